import Foundation
import XCTest

@testable import MLXLCCore

/// A model that replies with a script: after the prompt it favours `script[n]` at reply step n
/// (then `fallback`), and checks that the loop never overruns its cache.
final class ScriptedModel: LanguageModel {
    let contextLength: Int
    let vocab: Int
    let script: [Int]
    let fallback: Int
    private(set) var cached: [Int] = []
    private(set) var replySteps = 0
    private(set) var overran = false

    init(contextLength: Int, vocab: Int, script: [Int], fallback: Int) {
        self.contextLength = contextLength
        self.vocab = vocab
        self.script = script
        self.fallback = fallback
    }

    func reset() async throws {
        cached = []
        replySteps = 0
    }

    func prefill(_ tokens: [Int]) async throws -> [Float] {
        cached += tokens
        return logits()
    }

    func decode(_ token: Int) async throws -> [Float] {
        cached.append(token)
        replySteps += 1
        return logits()
    }

    private func logits() -> [Float] {
        if cached.count > contextLength { overran = true }
        var row = [Float](repeating: 0, count: vocab)
        row[replySteps < script.count ? script[replySteps] : fallback] = 12
        return row
    }
}

final class GenerationTests: XCTestCase {
    var manifest: Manifest!
    var tokenizer: Tokenizer!
    var comp: Manifest.Composition!
    let conversation = "Anna: Shall we meet at the café on Friday?\nBen: Sure 🙂"

    override func setUpWithError() throws {
        manifest = try Golden.manifest()
        tokenizer = try Golden.tokenizer("main")
        comp = try manifest.composition(named: "sum_es")
    }

    func generator(script: [Int], fallback: Int? = nil, context: Int? = nil) throws -> (Generator, ScriptedModel) {
        var m = manifest!
        if let context { m.model.contextLength = context }
        let model = ScriptedModel(contextLength: m.model.contextLength, vocab: m.model.vocabSize, script: script,
                                  fallback: fallback ?? m.tokenizer.eosTokenIds[0])
        return (try Generator(manifest: m, tokenizer: tokenizer, model: model), model)
    }

    /// The ids of `text` spelled one byte per token, so characters arrive in pieces.
    func byteTokens(_ text: String) throws -> [Int] {
        try text.utf8.map { try XCTUnwrap(tokenizer.tokenId(String(Character(ByteLevel.byteToScalar[Int($0)])))) }
    }

    func testStopsAtStopTokenAndStreamsWholeCharacters() async throws {
        let eos = manifest.tokenizer.eosTokenIds[0]
        let script = tokenizer.encode(" Hola") + (try byteTokens(" 🙂 ¡sí!")) + [eos, 7, 7]
        let (gen, model) = try generator(script: script)
        var chunks: [String] = []
        let result = try await gen.generate(text: conversation, composition: comp,
                                            options: GenerationOptions(maxNewTokens: 40)) { chunks.append($0) }
        XCTAssertEqual(result.stopReason, .stopToken(eos))
        XCTAssertEqual(result.text, "Hola 🙂 ¡sí!")  // one leading space dropped, as mlx-lm does
        XCTAssertEqual(result.tokens, Array(script.prefix(while: { $0 != eos })))
        XCTAssertEqual(chunks.joined(), result.text)
        XCTAssertFalse(chunks.contains { $0.contains("\u{FFFD}") })
        XCTAssertTrue(chunks.contains("🙂"), "the emoji arrives whole once its fourth byte is in: \(chunks)")
        XCTAssertEqual(model.cached.count, result.promptTokens + result.tokens.count)  // every reply token went through decode
        XCTAssertNil(result.truncation)
    }

    func testTokenLimit() async throws {
        let a = try XCTUnwrap(tokenizer.tokenId("a"))
        let (gen, _) = try generator(script: [], fallback: a)
        let result = try await gen.generate(text: conversation, composition: comp, options: GenerationOptions(maxNewTokens: 5))
        XCTAssertEqual(result.stopReason, .maxTokens)
        XCTAssertEqual(result.tokens, [a, a, a, a, a])
        XCTAssertEqual(result.text, "aaaaa")
    }

    func testStopsWhenTheContextIsFull() async throws {
        let a = try XCTUnwrap(tokenizer.tokenId("a"))
        let (gen, model) = try generator(script: [], fallback: a)
        let result = try await gen.generate(text: conversation, composition: comp, options: GenerationOptions(maxNewTokens: 1000))
        XCTAssertEqual(result.stopReason, .contextFull)
        XCTAssertEqual(result.promptTokens + result.tokens.count, manifest.model.contextLength)
        XCTAssertFalse(model.overran)
    }

    func testLongConversationLosesItsFirstLinesAndSaysSo() throws {
        let lines = (1...80).map { "Line \($0): Anna asks Ben about the café, and Ben answers." }
        let text = lines.joined(separator: "\n")
        let builder = try PromptBuilder(manifest: manifest, tokenizer: tokenizer)
        let reserve = 64
        let limit = manifest.model.contextLength - reserve
        let (ids, truncation) = try builder.fit(text: text, composition: comp, reserve: reserve)
        let t = try XCTUnwrap(truncation)
        XCTAssertLessThanOrEqual(ids.count, limit)
        XCTAssertGreaterThan(t.droppedLines, 0)
        XCTAssertEqual(t.promptTokenLimit, limit)
        XCTAssertGreaterThan(t.promptTokensBefore, limit)
        // The kept text is the end of the conversation, starting at a line, and as much as fits.
        let kept = lines[t.droppedLines...].joined(separator: "\n")
        XCTAssertEqual(ids, builder.ids(forPrompt: try comp.prompt(for: kept)))
        let oneMore = lines[(t.droppedLines - 1)...].joined(separator: "\n")
        XCTAssertGreaterThan(builder.ids(forPrompt: try comp.prompt(for: oneMore)).count, limit)
        XCTAssertTrue(t.notice.contains("first \(t.droppedLines) lines"), t.notice)
        XCTAssertThrowsError(try builder.fit(text: text, composition: comp, reserve: reserve, truncate: false)) { error in
            XCTAssertEqual(error as? LCError, .inputTooLong(promptTokens: t.promptTokensBefore, limit: limit))
        }
    }

    func testOneHugeLineIsCutAtAWord() throws {
        let text = (1...400).map { "word\($0)" }.joined(separator: " ")
        let builder = try PromptBuilder(manifest: manifest, tokenizer: tokenizer)
        let (ids, truncation) = try builder.fit(text: text, composition: comp, reserve: 64)
        let t = try XCTUnwrap(truncation)
        XCTAssertEqual(t.droppedLines, 0)
        XCTAssertLessThanOrEqual(ids.count, manifest.model.contextLength - 64)
        let kept = String(text.unicodeScalars.dropFirst(t.droppedCharacters))
        XCTAssertTrue(kept.hasPrefix("word"), kept)
        XCTAssertTrue(t.notice.contains("characters"), t.notice)
    }

    func testPromptThatCannotFitThrows() async throws {
        let (gen, _) = try generator(script: [], context: 24)
        do {
            _ = try await gen.generate(text: conversation, composition: comp, options: GenerationOptions(maxNewTokens: 8))
            XCTFail("expected inputTooLong")
        } catch let error as LCError {
            guard case .inputTooLong(_, let limit) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(limit, 24 - 8)
            XCTAssertFalse(error.localizedDescription.contains("\n"))
        }
    }

    func testEmptyInputAndUnknownComposition() async throws {
        let (gen, _) = try generator(script: [])
        for text in ["", " \n\t\u{3000}"] {
            do {
                _ = try await gen.generate(text: text, composition: comp, options: GenerationOptions(maxNewTokens: 4))
                XCTFail("expected emptyInput")
            } catch let error as LCError {
                XCTAssertEqual(error, .emptyInput)
            }
        }
        XCTAssertThrowsError(try manifest.composition(named: "nope")) { error in
            XCTAssertTrue((error as? LCError)?.localizedDescription.contains("Summary in Spanish") ?? false)
        }
        XCTAssertEqual(try manifest.composition(named: "summarize+es").name, "sum_es")
    }

    /// A session stopped at a deadline goes on from the same cache and ends as an
    /// uninterrupted one does (the App Intent's background -> foreground hand-off).
    func testPausedSessionResumesToTheSameReply() async throws {
        let script = tokenizer.encode(" Nos vemos el viernes, ¡genial! 🙂")
        let options = GenerationOptions(maxNewTokens: 30, sampling: SamplingOptions(temperature: 0.8, topP: 0.9, seed: 4))
        let (gen1, _) = try generator(script: script)
        let whole = try await gen1.generate(text: conversation, composition: comp, options: options)

        let (gen2, _) = try generator(script: script)
        let session = try await gen2.start(text: conversation, composition: comp, options: options)
        let finishedEarly = try await session.run(until: Date.distantPast)
        XCTAssertFalse(finishedEarly)
        XCTAssertTrue(session.tokens.isEmpty)
        for _ in 0..<3 { try await session.step { _ in } }
        XCTAssertEqual(session.tokens.count, 3)
        let finished = try await session.run()
        XCTAssertTrue(finished)
        XCTAssertEqual(session.result, whole)
    }

    func testCancellationStopsTheLoop() async throws {
        let a = try XCTUnwrap(tokenizer.tokenId("a"))
        let (manifest, tokenizer, comp, text) = (self.manifest!, self.tokenizer!, self.comp!, conversation)
        let result = try await Task {
            let model = ScriptedModel(contextLength: manifest.model.contextLength, vocab: 512, script: [], fallback: a)
            let gen = try Generator(manifest: manifest, tokenizer: tokenizer, model: model)
            let session = try await gen.start(text: text, composition: comp, options: GenerationOptions(maxNewTokens: 100))
            _ = try await session.run { _ in
                if session.tokens.count == 3 { withUnsafeCurrentTask { $0?.cancel() } }
            }
            return session.result
        }.value
        XCTAssertEqual(result?.stopReason, .cancelled)
        XCTAssertEqual(result?.tokens.count, 3)
    }

    func testModelContextMustMatchManifest() throws {
        let model = ScriptedModel(contextLength: 999, vocab: 512, script: [], fallback: 2)
        XCTAssertThrowsError(try Generator(manifest: manifest, tokenizer: tokenizer, model: model)) { error in
            guard case .manifestMismatch = error as? LCError else { return XCTFail("\(error)") }
        }
    }
}
