import Foundation

/// What the generation loop needs from a model: a KV cache it can clear, a prefill of many
/// tokens and a one-token decode, each returning the logits for the next token.
/// The Core ML backend (MLXLCCoreML) implements it with the exported functions and MLState.
public protocol LanguageModel: AnyObject {
    /// Tokens the cache holds: prompt and reply together.
    var contextLength: Int { get }
    /// Empties the cache; the next call starts at position 0.
    func reset() async throws
    /// Appends `tokens` to the cache; logits (vocabulary-sized) after the last one.
    func prefill(_ tokens: [Int]) async throws -> [Float]
    /// Appends one token; logits for the next.
    func decode(_ token: Int) async throws -> [Float]
}

public struct GenerationOptions: Sendable, Equatable {
    public var maxNewTokens: Int
    public var sampling: SamplingOptions
    /// When the prompt does not fit, drop the start of the conversation (true) or throw
    /// `LCError.inputTooLong` (false).
    public var truncate: Bool
    /// Added to the manifest's stop tokens.
    public var extraStopTokenIds: Set<Int>

    public init(maxNewTokens: Int, sampling: SamplingOptions = SamplingOptions(), truncate: Bool = true,
                extraStopTokenIds: Set<Int> = []) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.truncate = truncate
        self.extraStopTokenIds = extraStopTokenIds
    }
}

public enum StopReason: Sendable, Equatable {
    case stopToken(Int)
    case maxTokens
    /// The reply filled the model's context.
    case contextFull
    case cancelled
}

/// The start of the conversation was left out so the prompt fits the context.
public struct Truncation: Sendable, Equatable {
    public var droppedCharacters: Int
    public var keptCharacters: Int
    /// Whole lines (conversation turns) left out; a line cut in the middle does not count.
    public var droppedLines: Int
    public var promptTokensBefore: Int
    public var promptTokenLimit: Int

    /// One sentence for the person who asked.
    public var notice: String {
        let what = droppedLines > 0 ? "its first \(droppedLines) line\(droppedLines == 1 ? "" : "s")"
            : "its first \(droppedCharacters) characters"
        return "The conversation was too long for the model (\(promptTokensBefore) tokens, room for "
            + "\(promptTokenLimit)), so \(what) were left out."
    }
}

public struct GenerationResult: Sendable, Equatable {
    public var text: String
    public var tokens: [Int]
    public var promptTokens: Int
    public var stopReason: StopReason
    public var truncation: Truncation?
}

/// Runs compositions of one installed model: builds prompts from the manifest, fits them to the
/// context, and hands out sessions that generate token by token.
public final class Generator {
    public let prompts: PromptBuilder
    public let model: LanguageModel
    public var manifest: Manifest { prompts.manifest }
    public var tokenizer: Tokenizer { prompts.tokenizer }

    public init(manifest: Manifest, tokenizer: Tokenizer, model: LanguageModel) throws {
        prompts = try PromptBuilder(manifest: manifest, tokenizer: tokenizer)
        if model.contextLength != manifest.model.contextLength {
            throw LCError.manifestMismatch("the model holds \(model.contextLength) tokens, the manifest says \(manifest.model.contextLength)")
        }
        self.model = model
    }

    /// Resets the model, fits and prefills the prompt. One session at a time: the model has one cache.
    public func start(text: String, composition: Manifest.Composition, options: GenerationOptions) async throws
        -> GenerationSession {
        let (ids, truncation) = try prompts.fit(text: text, composition: composition, reserve: options.maxNewTokens,
                                              truncate: options.truncate)
        try await model.reset()
        let logits = try await model.prefill(ids)
        let stops = Set(manifest.generation.stopTokenIds).union(manifest.tokenizer.eosTokenIds).union(options.extraStopTokenIds)
        return GenerationSession(generator: self, promptTokens: ids.count, truncation: truncation, firstLogits: logits,
                                 stopTokenIds: stops, options: options)
    }

    /// The whole reply at once; `onText` sees it grow.
    public func generate(text: String, composition: Manifest.Composition, options: GenerationOptions,
                         onText: (String) -> Void = { _ in }) async throws -> GenerationResult {
        let session = try await start(text: text, composition: composition, options: options)
        _ = try await session.run(onText: onText)
        return session.result!
    }
}

/// One reply in progress. `run(until:)` can stop at a deadline and be called again later, so an
/// App Intent can use its background time, ask to continue in the foreground, and go on from
/// the same cache.
public final class GenerationSession {
    public let promptTokens: Int
    public let truncation: Truncation?
    public private(set) var tokens: [Int] = []
    public private(set) var text = ""
    public private(set) var stopReason: StopReason?

    let generator: Generator
    let options: GenerationOptions
    let stopTokenIds: Set<Int>
    var sampler: Sampler
    var detokenizer: StreamingDetokenizer
    var logits: [Float]
    /// mlx-lm's detokenizers drop one leading space of a reply; do the same unless the
    /// tokenizer's own decoder already strips it.
    var trimLeadingSpace: Bool

    init(generator: Generator, promptTokens: Int, truncation: Truncation?, firstLogits: [Float],
         stopTokenIds: Set<Int>, options: GenerationOptions) {
        self.generator = generator
        self.promptTokens = promptTokens
        self.truncation = truncation
        self.options = options
        self.stopTokenIds = stopTokenIds
        sampler = Sampler(options.sampling)
        detokenizer = StreamingDetokenizer(generator.tokenizer)
        logits = firstLogits
        trimLeadingSpace = generator.tokenizer.decoder.stripLeadingSpaces == 0
    }

    public var isFinished: Bool { stopReason != nil }

    public var result: GenerationResult? {
        stopReason.map { GenerationResult(text: text, tokens: tokens, promptTokens: promptTokens, stopReason: $0, truncation: truncation) }
    }

    /// Generates until a stop, or until `deadline` passes (then returns false; call again to go on).
    public func run(until deadline: Date? = nil, onText: (String) -> Void = { _ in }) async throws -> Bool {
        while stopReason == nil {
            if let deadline, Date() >= deadline { return false }
            if Task.isCancelled {
                finish(.cancelled, onText)
                break
            }
            try await step(onText)
        }
        return true
    }

    func step(_ onText: (String) -> Void) async throws {
        let vocab = generator.tokenizer.vocabSize
        // A model's vocabulary may be padded past the tokenizer's; never pick a padding id.
        let row = logits.count > vocab ? Array(logits[..<vocab]) : logits
        guard !row.isEmpty else { throw LCError.modelFailure("the model returned no logits") }
        let token = sampler.sample(row)
        if stopTokenIds.contains(token) { return finish(.stopToken(token), onText) }
        tokens.append(token)
        emit(detokenizer.append(token), onText)
        if tokens.count >= options.maxNewTokens { return finish(.maxTokens, onText) }
        if promptTokens + tokens.count >= generator.model.contextLength { return finish(.contextFull, onText) }
        logits = try await generator.model.decode(token)
    }

    func finish(_ reason: StopReason, _ onText: (String) -> Void) {
        emit(detokenizer.finish(), onText)
        stopReason = reason
    }

    func emit(_ chunk: String, _ onText: (String) -> Void) {
        var chunk = Substring(chunk)
        if trimLeadingSpace && !chunk.isEmpty {
            if text.isEmpty && chunk.first == " " { chunk = chunk.dropFirst() }
            if !chunk.isEmpty { trimLeadingSpace = false }
        }
        guard !chunk.isEmpty else { return }
        text += chunk
        onText(String(chunk))
    }
}

extension Manifest {
    /// The tokenizer beside the manifest must know the manifest's special tokens and fit the
    /// model's vocabulary.
    public func check(tokenizer: Tokenizer) throws {
        var problems: [String] = []
        if tokenizer.vocabSize > model.vocabSize {
            problems.append("the tokenizer has \(tokenizer.vocabSize) tokens, the model \(model.vocabSize)")
        }
        let named = [self.tokenizer.bosTokenId, self.tokenizer.padTokenId].compactMap { $0 } + self.tokenizer.eosTokenIds
        for id in named where id >= tokenizer.vocabSize || tokenizer.tokens[id] == nil {
            problems.append("special token \(id) is not in the tokenizer")
        }
        if !problems.isEmpty { throw LCError.manifestMismatch(problems.joined(separator: "; ")) }
    }
}
