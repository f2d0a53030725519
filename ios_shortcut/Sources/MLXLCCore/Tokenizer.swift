import Foundation

/// A tokenizer read from a Hugging Face tokenizer.json, encoding exactly as `tokenizers` does
/// (golden-tested against it): added/special tokens are cut out first, each remaining segment
/// is normalized, pre-tokenized and run through BPE. Byte-level BPE (GPT-2, Llama 3, Qwen2) and
/// sentencepiece-style BPE with byte fallback (Llama 2, Mistral) are implemented.
public final class Tokenizer: Sendable {
    public struct Options: Sendable {
        /// Use Swift Regex even for the split patterns that have hand-written scanners (tests).
        public var forceRegexEngine = false
        public init(forceRegexEngine: Bool = false) { self.forceRegexEngine = forceRegexEngine }
    }

    struct AddedToken: Sendable {
        let id: Int
        let scalars: [Unicode.Scalar]
        let special, lstrip, rstrip, singleWord: Bool
    }

    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: BPEModel
    let decoder: TokenDecoder
    let addedByFirstScalar: [Unicode.Scalar: [AddedToken]]
    /// Token text by id (added tokens included); nil for holes in the id range.
    public let tokens: [String?]
    public let specialIds: Set<Int>
    public var vocabSize: Int { tokens.count }

    public convenience init(directory: URL, options: Options = Options()) throws {
        let url = directory.appendingPathComponent("tokenizer.json")
        guard let data = try? Data(contentsOf: url) else {
            throw LCError.manifestMismatch("tokenizer.json is missing from \(directory.lastPathComponent)")
        }
        try self.init(json: data, options: options)
    }

    public init(json data: Data, options: Options = Options()) throws {
        guard let spec = (try? JSONSerialization.jsonObject(with: data)) as? JSON,
              let modelSpec = spec["model"] as? JSON else {
            throw LCError.unsupportedTokenizer("tokenizer.json is not a tokenizers file")
        }
        let force = options.forceRegexEngine
        normalizer = try Normalizer.parse(spec["normalizer"], forceRegex: force)
        preTokenizer = try PreTokenizer.parse(spec["pre_tokenizer"], forceRegex: force)
        model = try BPEModel(modelSpec)
        decoder = try TokenDecoder(spec["decoder"])

        var added: [AddedToken] = []
        for item in spec["added_tokens"] as? [JSON] ?? [] {
            guard let id = item["id"] as? Int, let content = item["content"] as? String, !content.isEmpty else { continue }
            added.append(AddedToken(id: id, scalars: Array(content.unicodeScalars), special: item["special"] as? Bool ?? false,
                                    lstrip: item["lstrip"] as? Bool ?? false, rstrip: item["rstrip"] as? Bool ?? false,
                                    singleWord: item["single_word"] as? Bool ?? false))
        }
        var byFirst: [Unicode.Scalar: [AddedToken]] = [:]
        for token in added { byFirst[token.scalars[0], default: []].append(token) }
        addedByFirstScalar = byFirst.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }

        let maxId = max(model.vocab.values.max() ?? -1, added.map(\.id).max() ?? -1)
        var tokens = [String?](repeating: nil, count: maxId + 1)
        for (token, id) in model.vocab where id >= 0 { tokens[id] = token }
        for token in added {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: token.scalars)
            tokens[token.id] = String(s)
        }
        self.tokens = tokens
        specialIds = Set(added.filter(\.special).map(\.id))
    }

    public func tokenId(_ token: String) -> Int? {
        if let first = token.unicodeScalars.first,
           let hit = addedByFirstScalar[first]?.first(where: { $0.scalars.elementsEqual(token.unicodeScalars) }) {
            return hit.id
        }
        return model.vocab[token]
    }

    /// Token ids for `text`, without the BOS a model may want (see `PromptBuilder.ids(forPrompt:)`).
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        for segment in segments(Array(text.unicodeScalars)) {
            switch segment {
            case .added(let id):
                ids.append(id)
            case .text(let scalars, let atStart):
                for piece in pieces(scalars, atStart: atStart) { ids += model.encode(word: piece.scalars) }
            }
        }
        return ids
    }

    /// The pre-tokenizer's output for text without added tokens (golden-tested piece by piece).
    public func preTokenize(_ text: String) -> [String] {
        pieces(Array(text.unicodeScalars), atStart: true).map {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: $0.scalars)
            return String(s)
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var stream = StreamingDetokenizer(self, skipSpecialTokens: skipSpecialTokens)
        return ids.map { stream.append($0) }.joined() + stream.finish()
    }

    func pieces(_ scalars: [Unicode.Scalar], atStart: Bool) -> [Piece] {
        var text = scalars
        if let normalizer {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            text = Array(normalizer.apply(String(view)).unicodeScalars)
        }
        if text.isEmpty { return [] }
        let piece = Piece(scalars: text, atStart: atStart)
        return preTokenizer?.apply([piece]) ?? [piece]
    }

    enum Segment {
        case added(Int)
        case text([Unicode.Scalar], atStart: Bool)
    }

    /// Cuts added tokens out of the text, leftmost-longest, honouring lstrip/rstrip/single_word.
    func segments(_ s: [Unicode.Scalar]) -> [Segment] {
        var out: [Segment] = []
        var segmentStart = 0
        var i = 0
        func isWordScalar(_ k: Int) -> Bool {
            k >= 0 && k < s.count && (Scanners.isLetter(s[k]) || Scanners.isNumber(s[k]) || s[k] == "_")
        }
        while i < s.count {
            let hit = addedByFirstScalar[s[i]]?.first { token in
                guard i + token.scalars.count <= s.count, s[i..<(i + token.scalars.count)].elementsEqual(token.scalars) else {
                    return false
                }
                return !token.singleWord || (!isWordScalar(i - 1) && !isWordScalar(i + token.scalars.count))
            }
            guard let token = hit else {
                i += 1
                continue
            }
            var start = i
            var end = i + token.scalars.count
            if token.lstrip { while start > segmentStart && s[start - 1].properties.isWhitespace { start -= 1 } }
            if token.rstrip { while end < s.count && s[end].properties.isWhitespace { end += 1 } }
            if start > segmentStart { out.append(.text(Array(s[segmentStart..<start]), atStart: segmentStart == 0)) }
            out.append(.added(token.id))
            i = end
            segmentStart = end
        }
        if segmentStart < s.count { out.append(.text(Array(s[segmentStart...]), atStart: segmentStart == 0)) }
        return out
    }
}
