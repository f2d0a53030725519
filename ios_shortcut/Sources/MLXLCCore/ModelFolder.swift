import Foundation

/// An installed export: the folder `mlx-lc export coreml` wrote (manifest.json, the package
/// it names, tokenizer files), checked for everything the app needs before any model loads.
public struct ModelFolder: Sendable {
    public let directory: URL
    public let manifest: Manifest
    public let tokenizer: Tokenizer
    /// A compiled model beside the package (`xcrun coremlcompiler compile` output), if any.
    public let compiledURL: URL?
    /// The .mlpackage to compile on the device when there is no compiled model.
    public let packageURL: URL?

    /// The first folder holding a manifest.json, in order (the app's Documents before its bundle).
    public static func locate(in candidates: [URL]) throws -> URL {
        let fm = FileManager.default
        for dir in candidates where fm.fileExists(atPath: dir.appendingPathComponent("manifest.json").path) {
            return dir
        }
        throw LCError.noModelInstalled(searched: candidates.map(\.path))
    }

    public init(directory: URL) throws {
        let manifest = try Manifest.load(contentsOf: directory.appendingPathComponent("manifest.json"))
        let fm = FileManager.default
        let missing = manifest.tokenizer.files.filter { !fm.fileExists(atPath: directory.appendingPathComponent($0).path) }
        if !missing.isEmpty {
            throw LCError.manifestMismatch("tokenizer files missing beside manifest.json: \(missing.joined(separator: ", "))")
        }
        let package = directory.appendingPathComponent(manifest.package)
        let compiled = package.deletingPathExtension().appendingPathExtension("mlmodelc")
        let hasPackage = fm.fileExists(atPath: package.path)
        let hasCompiled = fm.fileExists(atPath: compiled.path)
        if !hasPackage && !hasCompiled {
            throw LCError.manifestMismatch("\(manifest.package) (or its compiled .mlmodelc) is missing beside manifest.json")
        }
        let tokenizer = try Tokenizer(directory: directory)
        try manifest.check(tokenizer: tokenizer)
        self.directory = directory
        self.manifest = manifest
        self.tokenizer = tokenizer
        compiledURL = hasCompiled ? compiled : nil
        packageURL = hasPackage ? package : nil
    }
}

/// IEEE half-precision bit patterns, so Core ML's fp16 tensors can be read and written without
/// the `Float16` type (unavailable on Intel Macs).
public enum Half {
    /// The most negative finite half, the exporter's "masked" value.
    public static let lowestBits: UInt16 = 0xFBFF

    public static func float(_ bits: UInt16) -> Float {
        let sign: UInt32 = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F {  // inf or NaN
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {  // zero or subnormal: mantissa * 2^-24
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }
}
