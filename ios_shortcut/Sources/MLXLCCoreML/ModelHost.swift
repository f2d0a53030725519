#if canImport(CoreML)
import CoreML
import Foundation
import MLXLCCore

/// The app's one model: found, compiled and loaded once, kept warm between Shortcut runs
/// (the process outlives an intent), and running one reply at a time.
///
/// A reply runs in two calls so an App Intent can spend its background time, ask to continue
/// in the foreground, and go on from the same cache: `begin`, then `continueReply(until:)`
/// until it reports `finished`.
@available(iOS 18.0, macOS 15.0, *)
public actor ModelHost {
    public static let shared = ModelHost()

    /// Where an export is looked for, in order: what the person copied in with the Files app,
    /// then what was built into the app.
    public static var searchDirectories: [URL] {
        let fm = FileManager.default
        var dirs: [URL] = []
        if let docs = fm.urls(for: .documentDirectory, in: .userDomainMask).first { dirs.append(docs.appendingPathComponent("Model")) }
        if let bundled = Bundle.main.resourceURL { dirs.append(bundled.appendingPathComponent("Model")) }
        return dirs
    }

    public struct Reply: Sendable {
        public var text: String
        public var finished: Bool
        public var stopReason: StopReason?
        public var truncation: Truncation?
        public var promptTokens: Int
    }

    /// Compositions whose prefill/decode functions stay loaded. One by default: whether Core ML
    /// shares the weights of functions loaded separately is not documented, and a phone has
    /// little memory to spare.
    public var keepWarm = 1
    /// Where the model runs. One loaded model serves the app and the Shortcut, and the Shortcut's
    /// intent runs in the background, where iOS restricts GPU work: CPU and Neural Engine by
    /// default. An app that only generates in the foreground can make a host with `.cpuAndGPU`.
    public let computeUnits: MLComputeUnits
    private var folder: ModelFolder?
    /// Which manifest.json `folder` was read from: its path and a fingerprint of its bytes.
    private var loadedStamp: String?
    private var compiled: URL?
    private var warm: [(name: String, generator: Generator)] = []
    private var loading: [String: Task<Generator, Error>] = [:]
    private var session: GenerationSession?
    private var running = false

    public init(computeUnits: MLComputeUnits = .cpuAndNeuralEngine) {
        self.computeUnits = computeUnits
    }

    /// The installed export, read again when its manifest.json changed.
    ///
    /// Shortcuts lists the modes from the manifest on disk (`CompositionCatalog`), and an export
    /// can be replaced in the Files app while this process lives on; comparing the manifest's
    /// bytes (a few kilobytes) keeps the loaded model the one whose modes Shortcuts shows.
    public func installed() throws -> ModelFolder {
        let directory = try ModelFolder.locate(in: ModelHost.searchDirectories)
        let manifestURL = directory.appendingPathComponent("manifest.json")
        let stamp = (try? Data(contentsOf: manifestURL)).map { "\(manifestURL.path)#\(ModelHost.fingerprint($0))" }
        if let folder, stamp != nil, stamp == loadedStamp { return folder }
        if folder != nil { reload() }
        let folder = try ModelFolder(directory: directory)
        self.folder = folder
        loadedStamp = stamp
        return folder
    }

    public func reload() {
        folder = nil
        loadedStamp = nil
        compiled = nil
        warm = []
        session = nil
    }

    /// Compiles and loads a composition ahead of time (the app calls this on launch).
    public func prewarm(composition: String? = nil) async throws {
        let folder = try installed()
        _ = try await generator(for: composition ?? folder.manifest.compositions[0].name)
    }

    /// Starts a reply; the previous one, if unfinished, is dropped.
    public func begin(text: String, composition: String, options: GenerationOptions) async throws {
        guard !running else { throw LCError.busy }
        running = true
        defer { running = false }
        session = nil
        let generator = try await generator(for: composition)
        let comp = try generator.manifest.composition(named: composition)
        session = try await generator.start(text: text, composition: comp, options: options)
    }

    /// Generates until the reply ends or `deadline` passes; call again to go on.
    public func continueReply(until deadline: Date? = nil, onText: @Sendable (String) -> Void = { _ in }) async throws -> Reply {
        guard let session else { throw LCError.modelFailure("no reply was started") }
        guard !running else { throw LCError.busy }
        running = true
        defer { running = false }
        let finished = try await session.run(until: deadline, onText: onText)
        return Reply(text: session.text, finished: finished, stopReason: session.stopReason,
                     truncation: session.truncation, promptTokens: session.promptTokens)
    }

    /// One reply for an App Intent: at most `maxTokens` (the export's max_new_tokens when nil,
    /// never more than `hardCap`); when `backgroundBudget` seconds pass first, awaits
    /// `continueInForeground` (the intent asks the person) and finishes from the same cache.
    public func compose(text: String, composition: String, maxTokens: Int?, hardCap: Int,
                        backgroundBudget: TimeInterval,
                        continueInForeground: @Sendable () async throws -> Void) async throws -> Reply {
        let limit = try maxTokens ?? installed().manifest.generation.maxNewTokens
        let options = GenerationOptions(maxNewTokens: min(max(limit, 1), hardCap))
        try await begin(text: text, composition: composition, options: options)
        let reply = try await continueReply(until: Date().addingTimeInterval(backgroundBudget))
        if reply.finished { return reply }
        try await continueInForeground()
        return try await continueReply(until: nil)
    }

    private func generator(for name: String) async throws -> Generator {
        let folder = try installed()
        let comp = try folder.manifest.composition(named: name)
        if let i = warm.firstIndex(where: { $0.name == comp.name }) {
            let hit = warm.remove(at: i)
            warm.append(hit)
            return hit.generator
        }
        // The app's prewarm and a Shortcut run can ask at once; load once.
        if let pending = loading[comp.name] { return try await pending.value }
        let task = Task { try await self.load(comp, from: folder) }
        loading[comp.name] = task
        defer { loading[comp.name] = nil }
        let generator = try await task.value
        warm.append((comp.name, generator))
        if warm.count > keepWarm { warm.removeFirst(warm.count - keepWarm) }
        return generator
    }

    private func load(_ comp: Manifest.Composition, from folder: ModelFolder) async throws -> Generator {
        let url = try await compiledModel(folder)
        let model = try await CoreMLLanguageModel.load(compiledModel: url, manifest: folder.manifest, composition: comp,
                                                       computeUnits: computeUnits)
        return try Generator(manifest: folder.manifest, tokenizer: folder.tokenizer, model: model)
    }

    /// The compiled model: the .mlmodelc beside the manifest, or the package compiled once on
    /// the device and kept in Application Support (keyed by the manifest, so a new export
    /// compiles again).
    private func compiledModel(_ folder: ModelFolder) async throws -> URL {
        if let compiled { return compiled }
        if let url = folder.compiledURL {
            compiled = url
            return url
        }
        guard let package = folder.packageURL else {
            throw LCError.manifestMismatch("\(folder.manifest.package) is missing")
        }
        let fm = FileManager.default
        let cache = try fm.url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("MLXLC/Compiled", isDirectory: true)
        try fm.createDirectory(at: cache, withIntermediateDirectories: true)
        let stem = package.deletingPathExtension().lastPathComponent
        let manifestData = (try? Data(contentsOf: folder.directory.appendingPathComponent("manifest.json"))) ?? Data()
        let target = cache.appendingPathComponent("\(stem)-\(ModelHost.fingerprint(manifestData)).mlmodelc")
        if !fm.fileExists(atPath: target.path) {
            let temporary: URL
            do {
                temporary = try await MLModel.compileModel(at: package)
            } catch {
                throw LCError.manifestMismatch("\(folder.manifest.package) does not compile for this device (\(error.localizedDescription))")
            }
            for old in (try? fm.contentsOfDirectory(at: cache, includingPropertiesForKeys: nil)) ?? []
            where old.lastPathComponent.hasPrefix(stem + "-") {
                try? fm.removeItem(at: old)
            }
            try fm.moveItem(at: temporary, to: target)
        }
        compiled = target
        return target
    }

    /// FNV-1a of the manifest: a new export writes a new manifest.
    static func fingerprint(_ data: Data) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in data {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        return String(hash, radix: 16)
    }
}
#endif
