import Foundation

/// manifest.json, the contract between an mlx-lc Core ML export and this app.
///
/// Mirrors mlx_lc/manifest.py (schema version 1; see its docstring and ios_shortcut/MANIFEST.md).
/// Unknown keys are ignored so that an exporter can add fields without breaking older apps.
public struct Manifest: Decodable, Sendable, Equatable {
    public static let format = "mlx-lc-manifest"
    public static let version = 1

    public var format: String
    public var version: Int
    /// The Core ML package beside the manifest, e.g. "Model.mlpackage".
    public var package: String
    public var model: ModelInfo
    public var tokenizer: TokenizerInfo
    public var compositions: [Composition]
    public var io: IOSpec
    public var generation: GenerationDefaults

    public struct ModelInfo: Decodable, Sendable, Equatable {
        public var architecture: String
        public var vocabSize: Int
        public var hiddenSize: Int?
        public var numLayers: Int?
        public var numKvHeads: Int?
        public var headDim: Int?
        public var contextLength: Int
        public var quantization: String?

        enum CodingKeys: String, CodingKey {
            case architecture, quantization
            case vocabSize = "vocab_size", hiddenSize = "hidden_size", numLayers = "num_layers"
            case numKvHeads = "num_kv_heads", headDim = "head_dim", contextLength = "context_length"
        }
    }

    public struct TokenizerInfo: Decodable, Sendable, Equatable {
        public var files: [String]
        /// "bpe-bytelevel" or "sentencepiece"; the tokenizer itself follows tokenizer.json.
        public var kind: String
        public var bosTokenId: Int?
        public var eosTokenIds: [Int]
        public var padTokenId: Int?
        /// Whether the model expects a BOS token before a prompt that does not start with one.
        public var addBos: Bool

        enum CodingKeys: String, CodingKey {
            case files, kind
            case bosTokenId = "bos_token_id", eosTokenIds = "eos_token_ids", padTokenId = "pad_token_id"
            case addBos = "add_bos"
        }
    }

    public struct Composition: Decodable, Sendable, Equatable, Identifiable {
        public var name: String
        public var task: String?
        public var title: String
        public var primary: String?
        public var secondary: String?
        public var instruction: String?
        public var prompt: PromptTemplate
        public var functions: Functions
        public var id: String { name }

        public struct PromptTemplate: Decodable, Sendable, Equatable {
            public var prefix: String
            public var suffix: String
        }

        public struct Functions: Decodable, Sendable, Equatable {
            public var prefill: String
            public var decode: String
        }
    }

    public struct IOSpec: Decodable, Sendable, Equatable {
        public var inputs: [String: TensorSpec]
        public var outputs: [String: TensorSpec]
        public var states: [String: TensorSpec]
        /// Most tokens one prefill call takes (io.dims.T.prefill[1]); nil: the context length.
        public var maxPrefillTokens: Int?

        enum CodingKeys: String, CodingKey { case inputs, outputs, states, dims }

        /// io.dims: ranges of the flexible dimensions, {"T": {"prefill": [lo, hi], "decode": [1, 1]}, ...}.
        struct Dims: Decodable {
            struct TokenRange: Decodable { var prefill: [Int]? }
            var T: TokenRange?
        }

        public init(inputs: [String: TensorSpec], outputs: [String: TensorSpec], states: [String: TensorSpec],
                    maxPrefillTokens: Int? = nil) {
            self.inputs = inputs
            self.outputs = outputs
            self.states = states
            self.maxPrefillTokens = maxPrefillTokens
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inputs = try c.decode([String: TensorSpec].self, forKey: .inputs)
            outputs = try c.decode([String: TensorSpec].self, forKey: .outputs)
            states = try c.decodeIfPresent([String: TensorSpec].self, forKey: .states) ?? [:]
            // Optional and informative only: an unexpected layout must not make a manifest unreadable.
            let dims = try? c.decodeIfPresent(Dims.self, forKey: .dims)
            maxPrefillTokens = dims?.T?.prefill?.last
        }
    }

    public struct TensorSpec: Decodable, Sendable, Equatable {
        public var shape: [Dim]
        public var dtype: String
    }

    /// A tensor dimension: a fixed size, or a symbol for a flexible one ("T" new tokens, "P"
    /// tokens already cached, "P+T").
    public enum Dim: Decodable, Sendable, Equatable, CustomStringConvertible {
        case fixed(Int)
        case symbol(String)

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int.self) { self = .fixed(n) } else { self = .symbol(try c.decode(String.self)) }
        }

        public var description: String {
            switch self {
            case .fixed(let n): return String(n)
            case .symbol(let s): return s
            }
        }
    }

    public struct GenerationDefaults: Decodable, Sendable, Equatable {
        public var maxNewTokens: Int
        public var stopTokenIds: [Int]

        enum CodingKeys: String, CodingKey {
            case maxNewTokens = "max_new_tokens", stopTokenIds = "stop_token_ids"
        }
    }
}

extension Manifest {
    /// Decodes and validates; every problem is reported in one error.
    public static func decode(_ data: Data) throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch let error as DecodingError {
            throw LCError.invalidManifest(describe(error))
        } catch {
            throw LCError.invalidManifest(error.localizedDescription)
        }
        try manifest.validate()
        return manifest
    }

    public static func load(contentsOf url: URL) throws -> Manifest {
        guard let data = try? Data(contentsOf: url) else {
            throw LCError.noModelInstalled(searched: [url.deletingLastPathComponent().path])
        }
        return try decode(data)
    }

    /// Checks what decoding cannot: versions, unique names, ids inside the vocabulary, a context.
    public func validate() throws {
        var problems: [String] = []
        if format != Manifest.format || version != Manifest.version {
            problems.append("unsupported format \(format) v\(version) (this app reads \(Manifest.format) v\(Manifest.version))")
        }
        let names = compositions.map(\.name)
        if names.isEmpty { problems.append("no compositions") }
        if Set(names).count != names.count { problems.append("composition names repeat: \(names)") }
        for comp in compositions where comp.functions.prefill.isEmpty || comp.functions.decode.isEmpty {
            problems.append("composition \(comp.name) lacks prefill/decode function names")
        }
        // The name is what a saved Shortcut stores and the title what it shows: neither may be blank.
        for (i, comp) in compositions.enumerated()
        where comp.name.trimmingCharacters(in: .whitespaces).isEmpty || comp.title.trimmingCharacters(in: .whitespaces).isEmpty {
            problems.append("composition \(i) has an empty name or title")
        }
        if model.contextLength <= 0 { problems.append("context_length must be positive") }
        if model.vocabSize <= 0 { problems.append("vocab_size must be positive") }
        let ids = [tokenizer.bosTokenId, tokenizer.padTokenId].compactMap { $0 }
            + tokenizer.eosTokenIds + generation.stopTokenIds
        for id in ids where id < 0 || id >= model.vocabSize {
            problems.append("token id \(id) is outside the vocabulary of \(model.vocabSize)")
        }
        if tokenizer.addBos && tokenizer.bosTokenId == nil { problems.append("add_bos is set without a bos_token_id") }
        if generation.maxNewTokens <= 0 { problems.append("max_new_tokens must be positive") }
        do { _ = try ModelIO(io) } catch LCError.invalidManifest(let why) { problems.append(why) }
        if !problems.isEmpty { throw LCError.invalidManifest(problems.joined(separator: "; ")) }
    }

    public func composition(named name: String) throws -> Composition {
        if let comp = compositions.first(where: { $0.name == name || $0.task == name }) { return comp }
        throw LCError.unknownComposition(name, available: compositions.map(\.title))
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ ctx: DecodingError.Context) -> String {
            ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            let at = path(ctx)
            return "missing \(at.isEmpty ? key.stringValue : at + "." + key.stringValue)"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            return "wrong type at \(path(ctx))"
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "not JSON" : "bad value at \(path(ctx))"
        @unknown default:
            return "\(error)"
        }
    }
}

/// Which of the manifest's io names plays which role. Read from the manifest rather than
/// hard-coded: the token input is the int32 input (preferring "inputIds"), the mask is the
/// rank-4 float input (preferring "causalMask"), the logits are the output (preferring "logits").
public struct ModelIO: Sendable, Equatable {
    public var tokens: String
    public var mask: String?
    public var logits: String
    public var states: [String]

    public init(_ io: Manifest.IOSpec) throws {
        func pick(_ specs: [String: Manifest.TensorSpec], preferred: String, role: String,
                  where ok: (Manifest.TensorSpec) -> Bool) throws -> String? {
            if let spec = specs[preferred], ok(spec) { return preferred }
            let matches = specs.filter { ok($0.value) }.map(\.key).sorted()
            if matches.count > 1 {
                throw LCError.invalidManifest("io has several candidates for the \(role): \(matches)")
            }
            return matches.first
        }
        guard let tokens = try pick(io.inputs, preferred: "inputIds", role: "token input",
                                    where: { $0.dtype.hasPrefix("int") }) else {
            throw LCError.invalidManifest("io.inputs has no integer token input")
        }
        let mask = try pick(io.inputs, preferred: "causalMask", role: "mask input",
                            where: { $0.dtype.hasPrefix("float") && $0.shape.count == 4 })
        guard let logits = try pick(io.outputs, preferred: "logits", role: "logits output",
                                    where: { $0.dtype.hasPrefix("float") }) else {
            throw LCError.invalidManifest("io.outputs has no float logits output")
        }
        let known = Set([tokens, mask].compactMap { $0 })
        let extra = io.inputs.keys.filter { !known.contains($0) }.sorted()
        if !extra.isEmpty {
            throw LCError.invalidManifest("io.inputs has inputs this app cannot fill: \(extra)")
        }
        self.tokens = tokens
        self.mask = mask
        self.logits = logits
        self.states = io.states.keys.sorted()
    }
}
