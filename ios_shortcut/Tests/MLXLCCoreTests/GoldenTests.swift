import Foundation
import XCTest

@testable import MLXLCCore

/// The golden files written by `python scripts/ios_golden.py` (mlx_lc/ios/golden.py): what Python
/// says the app must produce. Each test compares the Swift result with them exactly.
enum Golden {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: dir.appendingPathComponent(name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func manifest() throws -> Manifest {
        try Manifest.load(contentsOf: dir.appendingPathComponent("manifest.json"))
    }

    static func tokenizer(_ variant: String, regex: Bool = false) throws -> Tokenizer {
        let folder = variant == "main" ? dir : dir.appendingPathComponent("variants/\(variant)")
        return try Tokenizer(directory: folder, options: .init(forceRegexEngine: regex))
    }

    static let variants = ["main", "llama3", "spm", "metaspace", "qwen2"]
}

final class GoldenTokenizerTests: XCTestCase {
    func testEncodeMatchesPython() throws {
        let tokens = try Golden.json("tokens.json")
        for variant in Golden.variants {
            let tok = try Golden.tokenizer(variant)
            let cases = try XCTUnwrap((tokens[variant] as? [String: Any])?["encode"] as? [[String: Any]])
            XCTAssertGreaterThan(cases.count, 20)
            for c in cases {
                let text = try XCTUnwrap(c["text"] as? String)
                XCTAssertEqual(tok.encode(text), c["ids"] as? [Int], "\(variant): \(text.debugDescription)")
                if let pieces = c["pieces"] as? [String] {
                    XCTAssertEqual(tok.preTokenize(text), pieces, "\(variant) pieces: \(text.debugDescription)")
                }
            }
        }
    }

    /// The Swift Regex fallback (used for split patterns without a scanner) agrees with the
    /// hand-written scanners and with Python.
    func testRegexEngineMatchesScanners() throws {
        let tokens = try Golden.json("tokens.json")
        for variant in ["main", "llama3", "qwen2"] {
            let tok = try Golden.tokenizer(variant, regex: true)
            let cases = try XCTUnwrap((tokens[variant] as? [String: Any])?["encode"] as? [[String: Any]])
            for c in cases {
                let text = try XCTUnwrap(c["text"] as? String)
                XCTAssertEqual(tok.encode(text), c["ids"] as? [Int], "\(variant) regex: \(text.debugDescription)")
            }
        }
    }

    func testDecodeMatchesPython() throws {
        let tokens = try Golden.json("tokens.json")
        for variant in Golden.variants {
            let tok = try Golden.tokenizer(variant)
            let cases = try XCTUnwrap((tokens[variant] as? [String: Any])?["decode"] as? [[String: Any]])
            for c in cases {
                let ids = try XCTUnwrap(c["ids"] as? [Int])
                let expected = try XCTUnwrap(c["text"] as? String)
                XCTAssertEqual(tok.decode(ids), expected, "\(variant): \(ids)")
                // Streaming never emits half a character, and adds up to the same text.
                var stream = StreamingDetokenizer(tok)
                var chunks = ids.map { stream.append($0) }
                chunks.append(stream.finish())
                XCTAssertEqual(chunks.joined(), expected, "\(variant) streamed: \(ids)")
                for chunk in chunks {
                    XCTAssertFalse(chunk.unicodeScalars.contains("\u{FFFD}") && !expected.contains("\u{FFFD}"))
                }
            }
        }
    }
}

final class GoldenPromptTests: XCTestCase {
    func testManifestDecodes() throws {
        let m = try Golden.manifest()
        XCTAssertEqual(m.compositions.count, 14)
        XCTAssertEqual(Set(m.compositions.map(\.name)).count, 14)
        let io = try ModelIO(m.io)
        XCTAssertEqual(io.tokens, "inputIds")
        XCTAssertEqual(io.mask, "causalMask")
        XCTAssertEqual(io.logits, "logits")
        XCTAssertEqual(io.states, ["keyCache", "valueCache"])
        XCTAssertEqual(m.io.maxPrefillTokens, m.model.contextLength)
        XCTAssertEqual(m.compositions[0].functions.prefill, "\(m.compositions[0].name)_prefill")
        XCTAssertNoThrow(try m.check(tokenizer: Golden.tokenizer("main")))
    }

    func testPromptsAndIdsMatchPython() throws {
        let m = try Golden.manifest()
        let builder = try PromptBuilder(manifest: m, tokenizer: Golden.tokenizer("main"))
        let golden = try Golden.json("prompts.json")
        let conversations = try XCTUnwrap(golden["conversations"] as? [String])
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, m.compositions.count * conversations.count)
        for c in cases {
            let comp = try m.composition(named: XCTUnwrap(c["composition"] as? String))
            let text = conversations[try XCTUnwrap(c["conversation"] as? Int)]
            let prompt = try comp.prompt(for: text)
            XCTAssertEqual(prompt, c["prompt"] as? String, comp.name)
            XCTAssertEqual(builder.ids(forPrompt: prompt), c["ids"] as? [Int], comp.name)
            let (ids, truncation) = try builder.fit(text: text, composition: comp, reserve: 16)
            XCTAssertEqual(ids, c["ids"] as? [Int])
            XCTAssertNil(truncation)
        }
        // Plain prompts (no chat template) get the BOS the manifest asks for.
        let plain = try XCTUnwrap(golden["plain"] as? [[String: Any]])
        XCTAssertEqual(plain.count, conversations.count)
        for c in plain {
            let ids = builder.ids(forPrompt: try XCTUnwrap(c["prompt"] as? String))
            XCTAssertEqual(ids, c["ids"] as? [Int])
            XCTAssertEqual(ids.first, m.tokenizer.bosTokenId)
        }
    }
}

final class GoldenSamplerTests: XCTestCase {
    func testSplitMix64MatchesPython() throws {
        let prng = try XCTUnwrap(Golden.json("sampler.json")["prng"] as? [String: [String: Any]])
        XCTAssertEqual(prng.count, 3)
        for (seed, draws) in prng {
            var rng = SplitMix64(seed: try XCTUnwrap(UInt64(seed)))
            let u64 = try XCTUnwrap(draws["u64"] as? [String])
            XCTAssertEqual(u64.map { _ in String(rng.next()) }, u64)
            let doubles = try XCTUnwrap(draws["double"] as? [String]).map { Double($0) }  // hex floats
            XCTAssertEqual(doubles.map { _ in rng.nextDouble() }, doubles)
            XCTAssertFalse(doubles.contains(nil))
        }
    }

    func testSampledTokensMatchPython() throws {
        let golden = try Golden.json("sampler.json")
        let logits = try XCTUnwrap(golden["logits"] as? [[Double]]).map { $0.map { Float($0) } }
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 5)
        for c in cases {
            let options = SamplingOptions(temperature: try XCTUnwrap(c["temperature"] as? Double),
                                          topP: try XCTUnwrap(c["top_p"] as? Double),
                                          seed: try XCTUnwrap(UInt64(XCTUnwrap(c["seed"] as? String))))
            var sampler = Sampler(options)
            XCTAssertEqual(logits.map { sampler.sample($0) }, c["tokens"] as? [Int], "\(options)")
        }
    }
}
