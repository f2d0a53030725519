import Foundation
import XCTest

@testable import MLXLCCore

/// What a person sees when the model folder is missing or incomplete.
final class ModelFolderTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("mlxlc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// A copy of the golden export folder, without the Core ML package unless asked.
    func makeFolder(_ name: String, package: Bool) throws -> URL {
        let dir = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let manifest = try Golden.manifest()
        for file in manifest.tokenizer.files + ["manifest.json"] {
            try FileManager.default.copyItem(at: Golden.dir.appendingPathComponent(file), to: dir.appendingPathComponent(file))
        }
        if package {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(manifest.package), withIntermediateDirectories: true)
        }
        return dir
    }

    func testNoModelInstalledNamesWhereItLooked() throws {
        let candidates = [root.appendingPathComponent("Documents/Model"), root.appendingPathComponent("Bundle/Model")]
        XCTAssertThrowsError(try ModelFolder.locate(in: candidates)) { error in
            XCTAssertEqual(error as? LCError, .noModelInstalled(searched: candidates.map(\.path)))
            XCTAssertTrue((error as? LCError)?.localizedDescription.contains("mlx-lc export coreml") ?? false)
        }
    }

    func testFirstFolderWithAManifestWins() throws {
        let second = try makeFolder("second", package: true)
        let first = root.appendingPathComponent("empty")
        XCTAssertEqual(try ModelFolder.locate(in: [first, second]), second)
        let folder = try ModelFolder(directory: second)
        XCTAssertEqual(folder.manifest.compositions.count, 14)
        XCTAssertNotNil(folder.packageURL)
        XCTAssertNil(folder.compiledURL)
    }

    func testMissingPackageOrTokenizerIsAMismatch() throws {
        let dir = try makeFolder("nopackage", package: false)
        XCTAssertThrowsError(try ModelFolder(directory: dir)) { error in
            guard case .manifestMismatch(let why) = error as? LCError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("Model.mlpackage"), why)
        }
        let dir2 = try makeFolder("notok", package: true)
        try FileManager.default.removeItem(at: dir2.appendingPathComponent("tokenizer.json"))
        XCTAssertThrowsError(try ModelFolder(directory: dir2)) { error in
            guard case .manifestMismatch(let why) = error as? LCError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("tokenizer.json"), why)
        }
    }

    func testCompiledModelIsFoundBesideTheManifest() throws {
        let dir = try makeFolder("compiled", package: false)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("Model.mlmodelc"), withIntermediateDirectories: true)
        let folder = try ModelFolder(directory: dir)
        XCTAssertEqual(folder.compiledURL?.lastPathComponent, "Model.mlmodelc")
        XCTAssertNil(folder.packageURL)
    }

    func testHalfBitsMatchFloat16() {
        #if !(os(macOS) && arch(x86_64))
        for bits in stride(from: 0, through: 0xFFFF, by: 1).map({ UInt16($0) }) {
            let expected = Float(Float16(bitPattern: bits))
            let got = Half.float(bits)
            if expected.isNaN { XCTAssertTrue(got.isNaN); continue }
            XCTAssertEqual(got.bitPattern, expected.bitPattern, "bits \(bits)")
        }
        XCTAssertEqual(Half.float(Half.lowestBits), -65504)
        #endif
    }
}

/// A real export, when MLXLC_EXPORT_DIR names one (`mlx-lc export coreml ... --out DIR`):
/// its folder passes the app's checks and every composition builds a prompt and runs the loop.
final class ExportFolderTests: XCTestCase {
    func testExportFolderFromEnvironment() async throws {
        guard let path = ProcessInfo.processInfo.environment["MLXLC_EXPORT_DIR"] else {
            throw XCTSkip("set MLXLC_EXPORT_DIR to an export folder to check it")
        }
        let folder = try ModelFolder(directory: URL(fileURLWithPath: path))
        let roles = try ModelIO(folder.manifest.io)
        XCTAssertEqual([roles.tokens, roles.mask, roles.logits], ["inputIds", "causalMask", "logits"])
        for comp in folder.manifest.compositions {
            let model = ScriptedModel(contextLength: folder.manifest.model.contextLength, vocab: folder.manifest.model.vocabSize,
                                      script: folder.tokenizer.encode(" ¡Hola!"), fallback: folder.manifest.tokenizer.eosTokenIds[0])
            let gen = try Generator(manifest: folder.manifest, tokenizer: folder.tokenizer, model: model)
            let result = try await gen.generate(text: "Anna: Café at 7?\nBen: Sure 🙂", composition: comp,
                                                options: GenerationOptions(maxNewTokens: 8))
            XCTAssertEqual(result.text, "¡Hola!", comp.name)
            XCTAssertFalse(model.overran)
        }
    }
}
