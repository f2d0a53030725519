import Foundation
import XCTest

@testable import MLXLCCore

/// Broken manifests give one readable line that names every problem.
final class ManifestTests: XCTestCase {
    func goldenObject() throws -> [String: Any] { try Golden.json("manifest.json") }

    func decodeError(_ object: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object)
        do {
            _ = try Manifest.decode(data)
        } catch let error as LCError {
            let text = try XCTUnwrap(error.errorDescription)
            XCTAssertFalse(text.contains("\n"), text)
            return text
        }
        XCTFail("manifest decoded although broken")
        return ""
    }

    func testMissingKey() throws {
        var m = try goldenObject()
        m["io"] = nil
        XCTAssertTrue(try decodeError(m).contains("missing io"))
        var tok = try XCTUnwrap(m["tokenizer"] as? [String: Any])
        tok["eos_token_ids"] = nil
        m = try goldenObject()
        m["tokenizer"] = tok
        XCTAssertTrue(try decodeError(m).contains("tokenizer.eos_token_ids"))
    }

    func testEveryProblemIsListed() throws {
        var m = try goldenObject()
        m["version"] = 2
        var comps = try XCTUnwrap(m["compositions"] as? [[String: Any]])
        comps[1]["name"] = comps[0]["name"]
        m["compositions"] = comps
        var gen = try XCTUnwrap(m["generation"] as? [String: Any])
        gen["stop_token_ids"] = [2, 100_000]
        m["generation"] = gen
        let text = try decodeError(m)
        XCTAssertTrue(text.contains("v2"), text)
        XCTAssertTrue(text.contains("names repeat"), text)
        XCTAssertTrue(text.contains("100000"), text)
    }

    func testIOTheAppCannotFill() throws {
        var m = try goldenObject()
        var io = try XCTUnwrap(m["io"] as? [String: Any])
        var inputs = try XCTUnwrap(io["inputs"] as? [String: Any])
        inputs["positionIds"] = ["shape": [1, "T"], "dtype": "float32"]
        io["inputs"] = inputs
        m["io"] = io
        XCTAssertTrue(try decodeError(m).contains("positionIds"))
        inputs["positionIds"] = nil
        inputs["inputIds"] = nil
        io["inputs"] = inputs
        m["io"] = io
        XCTAssertTrue(try decodeError(m).contains("no integer token input"))
    }

    func testRolesComeFromTheManifestNotFixedNames() throws {
        let io = Manifest.IOSpec(
            inputs: ["tokens": .init(shape: [.fixed(1), .symbol("T")], dtype: "int32"),
                     "mask": .init(shape: [.fixed(1), .fixed(1), .symbol("T"), .symbol("P+T")], dtype: "float16")],
            outputs: ["scores": .init(shape: [.fixed(1), .symbol("T"), .fixed(512)], dtype: "float16")],
            states: ["k": .init(shape: [], dtype: "float16"), "v": .init(shape: [], dtype: "float16")])
        let roles = try ModelIO(io)
        XCTAssertEqual(roles, try ModelIO(io))
        XCTAssertEqual([roles.tokens, roles.mask, roles.logits], ["tokens", "mask", "scores"])
        XCTAssertEqual(roles.states, ["k", "v"])
    }

    func testTokenizerThatDoesNotFitTheModel() throws {
        let manifest = try Golden.manifest()
        let spm = try Golden.tokenizer("spm")  // 700+ tokens for a 512-token model
        XCTAssertThrowsError(try PromptBuilder(manifest: manifest, tokenizer: spm)) { error in
            guard case .manifestMismatch(let why) = error as? LCError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("tokens"), why)
        }
    }

    func testNotJSON() throws {
        XCTAssertThrowsError(try Manifest.decode(Data("nope".utf8))) { error in
            XCTAssertEqual(error as? LCError, .invalidManifest("not JSON"))
        }
    }

    func testPythonStrip() {
        XCTAssertEqual(PythonWhitespace.strip("\u{1C} \t a b \u{3000}\u{85}"), "a b")
        XCTAssertEqual(PythonWhitespace.strip(" \u{301}x"), "\u{301}x")  // a combining mark stays
        XCTAssertEqual(PythonWhitespace.strip("\u{200B}x"), "\u{200B}x")  // zero width space is not space
    }
}
