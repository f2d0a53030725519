import Foundation
import XCTest

@testable import MLXLCCore

/// The Mode list comes from the installed manifest.json at run time: compositions the app was
/// never built with are listed as they are, and a broken manifest is one readable error.
final class CompositionCatalogTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("mlxlc-catalog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// A manifest as a newer `mlx-lc export coreml` could write it for user-defined tasks: a
    /// hyphenated task name, a three-task composition (whose `primary`/`secondary` name only its
    /// first and last steps) without `instruction`, and a key this app does not know.
    static let unseen = #"""
    {
      "format": "mlx-lc-manifest", "version": 1, "package": "Model.mlpackage",
      "model": {"architecture": "qwen2", "vocab_size": 1000, "context_length": 512, "quantization": "int4"},
      "tokenizer": {"files": ["tokenizer.json"], "kind": "bpe-bytelevel", "bos_token_id": null,
                    "eos_token_ids": [7], "pad_token_id": 0, "add_bos": false},
      "compositions": [
        {"name": "action_items_ja", "task": "action-items+japanese", "title": "Action items in Japanese",
         "primary": "action-items", "secondary": "japanese",
         "instruction": "List the action items of the dialogue, in Japanese.",
         "prompt": {"prefix": "<|im_start|>user\nList the action items of the dialogue, in Japanese.\n\n",
                    "suffix": "<|im_end|>\n<|im_start|>assistant\n"},
         "functions": {"prefill": "action_items_ja_prefill", "decode": "action_items_ja_decode"},
         "color": "teal"},
        {"name": "sum+bullets+de", "task": "summarize+bullets+de", "title": "Bullet summary in German",
         "primary": "summarize", "secondary": "de",
         "prompt": {"prefix": "### Instruction:\n", "suffix": "\n### Response:\n"},
         "functions": {"prefill": "sum_bullets_de_prefill", "decode": "sum_bullets_de_decode"}}
      ],
      "io": {"inputs": {"inputIds": {"shape": [1, "T"], "dtype": "int32"},
                        "causalMask": {"shape": [1, 1, "T", "P+T"], "dtype": "float16"}},
             "outputs": {"logits": {"shape": [1, "T", 1000], "dtype": "float16"}},
             "states": {"keyCache": {"shape": [2, 1, 2, 512, 8], "dtype": "float16"},
                        "valueCache": {"shape": [2, 1, 2, 512, 8], "dtype": "float16"}}},
      "generation": {"max_new_tokens": 100, "stop_token_ids": [7]}
    }
    """#

    func write(_ text: String, to folder: String) throws -> URL {
        let dir = root.appendingPathComponent(folder)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: dir.appendingPathComponent("manifest.json"))
        return dir
    }

    func testCompositionsTheAppHasNeverSeen() throws {
        let comps = try CompositionCatalog.compositions(from: Data(Self.unseen.utf8))
        XCTAssertEqual(comps.map(\.id), ["action_items_ja", "sum+bullets+de"])
        XCTAssertEqual(comps.map(\.title), ["Action items in Japanese", "Bullet summary in German"])
        XCTAssertEqual(comps.map(\.task), ["action-items+japanese", "summarize+bullets+de"])
        XCTAssertEqual(comps[0].tasks, ["action-items", "japanese"])
        XCTAssertEqual(comps[1].tasks, ["summarize", "bullets", "de"])
        XCTAssertEqual(comps[0].functions, .init(prefill: "action_items_ja_prefill", decode: "action_items_ja_decode"))
        XCTAssertEqual(comps[0].instruction, "List the action items of the dialogue, in Japanese.")
        XCTAssertEqual(comps[0].prompt.suffix, "<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertNil(comps[1].instruction)
        XCTAssertEqual(comps[1].prompt.prefix, "### Instruction:\n")

        // The intent finds a composition by its name or its task, whatever they are.
        let manifest = try Manifest.decode(Data(Self.unseen.utf8))
        XCTAssertEqual(try manifest.composition(named: "summarize+bullets+de").name, "sum+bullets+de")
        XCTAssertEqual(try manifest.composition(named: "action_items_ja").title, "Action items in Japanese")
        XCTAssertThrowsError(try manifest.composition(named: "sum_es")) { error in
            XCTAssertEqual(error as? LCError,
                           .unknownComposition("sum_es", available: ["Action items in Japanese", "Bullet summary in German"]))
        }
    }

    func testInstalledReadsTheFirstFolderWithAManifest() throws {
        let documents = root.appendingPathComponent("Documents/Model")  // nothing imported yet
        let bundled = try write(Self.unseen, to: "Bundle/Model")
        XCTAssertEqual(try CompositionCatalog.installed(in: [documents, bundled]).map(\.name),
                       ["action_items_ja", "sum+bullets+de"])

        // A new export dropped into Documents/Model replaces the list, with no rebuild.
        let newer = Self.unseen.replacingOccurrences(of: "Action items in Japanese", with: "やること")
        _ = try write(newer, to: "Documents/Model")
        XCTAssertEqual(try CompositionCatalog.installed(in: [documents, bundled]).first?.title, "やること")

        let nowhere = [root.appendingPathComponent("a"), root.appendingPathComponent("b")]
        XCTAssertThrowsError(try CompositionCatalog.installed(in: nowhere)) { error in
            XCTAssertEqual(error as? LCError, .noModelInstalled(searched: nowhere.map(\.path)))
        }
    }

    /// What a person reads when the installed manifest.json is broken: one line naming the problem.
    func malformed(_ text: String) throws -> String {
        do {
            let comps = try CompositionCatalog.compositions(from: Data(text.utf8))
            XCTFail("read \(comps.count) compositions from a broken manifest")
            return ""
        } catch let error as LCError {
            guard case .invalidManifest = error else { XCTFail("\(error)"); return "" }
            let message = try XCTUnwrap(error.errorDescription)
            XCTAssertFalse(message.contains("\n"), message)
            XCTAssertTrue(message.hasPrefix("The model's manifest.json is not valid: "), message)
            return message
        }
    }

    func testMalformedManifest() throws {
        XCTAssertTrue(try malformed(String(Self.unseen.dropLast(10))).contains("not JSON"))
        XCTAssertTrue(try malformed(Self.unseen.replacingOccurrences(of: #""compositions": ["#, with: #""compositions": {"x": ["#)
            .replacingOccurrences(of: #"],\#n  "io""#, with: #"]},\#n  "io""#)).contains("wrong type at compositions"))

        let noFunctions = Self.unseen.replacingOccurrences(
            of: #""functions": {"prefill": "sum_bullets_de_prefill", "decode": "sum_bullets_de_decode"}"#,
            with: #""fns": {}"#)
        XCTAssertTrue(try malformed(noFunctions).contains("missing compositions.1.functions"))

        let noTitle = Self.unseen.replacingOccurrences(of: #""title": "Bullet summary in German","#, with: "")
        XCTAssertTrue(try malformed(noTitle).contains("missing compositions.1.title"))

        let blankTitle = Self.unseen.replacingOccurrences(of: "Bullet summary in German", with: " ")
        XCTAssertTrue(try malformed(blankTitle).contains("composition 1 has an empty name or title"))

        let twice = Self.unseen.replacingOccurrences(of: #""name": "sum+bullets+de""#, with: #""name": "action_items_ja""#)
        XCTAssertTrue(try malformed(twice).contains("composition names repeat"))

        let none = Self.unseen.replacingOccurrences(
            of: #"(?s)"compositions": \[.*?\n  \],"#, with: #""compositions": [],"#, options: .regularExpression)
        XCTAssertTrue(try malformed(none).contains("no compositions"))

        let newer = Self.unseen.replacingOccurrences(of: #""version": 1"#, with: #""version": 2"#)
        XCTAssertTrue(try malformed(newer).contains("unsupported format mlx-lc-manifest v2"))

        // From a folder, too: the error a Shortcut shows instead of an empty Mode list.
        let dir = try write(noFunctions, to: "Model")
        XCTAssertThrowsError(try CompositionCatalog.installed(in: [dir])) { error in
            XCTAssertTrue((error as? LCError)?.localizedDescription.contains("compositions.1.functions") ?? false, "\(error)")
        }
    }
}
