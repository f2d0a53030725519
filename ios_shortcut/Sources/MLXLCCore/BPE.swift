import Foundation

/// The BPE model of a tokenizer.json: vocabulary, ranked merges, byte fallback and unknowns,
/// applied per pre-tokenized word as Hugging Face `tokenizers` does.
struct BPEModel: Sendable {
    let vocab: [String: Int]
    /// (left id, right id) packed in 64 bits -> (rank, merged id).
    let merges: [UInt64: (rank: Int, id: Int)]
    let byteFallback: Bool
    let unkId: Int?
    let fuseUnk: Bool
    /// Llama 3: a word that is already in the vocabulary is one token, merges or not.
    let ignoreMerges: Bool
    /// id of "<0xXX>" for each byte, when byte fallback is on.
    let byteIds: [Int?]

    init(_ spec: JSON) throws {
        guard (spec["type"] as? String ?? "BPE") == "BPE" else {
            throw LCError.unsupportedTokenizer("model type \(spec["type"] ?? "?") (only BPE is implemented)")
        }
        if let prefix = spec["continuing_subword_prefix"] as? String, !prefix.isEmpty {
            throw LCError.unsupportedTokenizer("BPE continuing_subword_prefix")
        }
        if let suffix = spec["end_of_word_suffix"] as? String, !suffix.isEmpty {
            throw LCError.unsupportedTokenizer("BPE end_of_word_suffix")
        }
        guard let rawVocab = spec["vocab"] as? [String: Any] else {
            throw LCError.unsupportedTokenizer("BPE model without a vocabulary")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(rawVocab.count)
        for (token, id) in rawVocab {
            guard let id = id as? Int else { continue }
            vocab[token] = id
        }
        self.vocab = vocab
        var merges: [UInt64: (rank: Int, id: Int)] = [:]
        let rawMerges = spec["merges"] as? [Any] ?? []
        merges.reserveCapacity(rawMerges.count)
        var missing: [String] = []
        for (rank, merge) in rawMerges.enumerated() {
            // Two encodings: "a b" (tokenizers < 0.20) or ["a", "b"].
            let pair: [String]
            if let s = merge as? String {
                pair = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            } else {
                pair = merge as? [String] ?? []
            }
            guard pair.count == 2, let a = vocab[pair[0]], let b = vocab[pair[1]], let ab = vocab[pair[0] + pair[1]] else {
                missing.append("\(merge)")
                continue
            }
            let key = BPEModel.key(a, b)
            if merges[key] == nil { merges[key] = (rank, ab) }
        }
        if !missing.isEmpty {
            throw LCError.unsupportedTokenizer("\(missing.count) merges name tokens missing from the vocabulary, e.g. \(missing[0])")
        }
        self.merges = merges
        byteFallback = spec["byte_fallback"] as? Bool ?? false
        unkId = (spec["unk_token"] as? String).flatMap { vocab[$0] }
        fuseUnk = spec["fuse_unk"] as? Bool ?? false
        ignoreMerges = spec["ignore_merges"] as? Bool ?? false
        byteIds = (0..<256).map { vocab[String(format: "<0x%02X>", $0)] }
    }

    static func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(UInt32(truncatingIfNeeded: a)) << 32 | UInt64(UInt32(truncatingIfNeeded: b)) }

    func encode(word: [Unicode.Scalar]) -> [Int] {
        if ignoreMerges {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: word)
            if let id = vocab[String(s)] { return [id] }
        }
        var symbols: [Int] = []
        symbols.reserveCapacity(word.count)
        var lastWasUnk = false
        for scalar in word {
            let char = String(Character(scalar))
            if let id = vocab[char] {
                symbols.append(id)
                lastWasUnk = false
                continue
            }
            if byteFallback {
                let ids = char.utf8.map { byteIds[Int($0)] }
                if ids.allSatisfy({ $0 != nil }) {
                    symbols.append(contentsOf: ids.map { $0! })
                    lastWasUnk = false
                    continue
                }
            }
            if let unk = unkId {
                if !(fuseUnk && lastWasUnk) { symbols.append(unk) }
                lastWasUnk = true
            }
        }
        // Merge the lowest-ranked adjacent pair, leftmost first, until none is left. Words are
        // short, so the quadratic scan beats a heap.
        while symbols.count > 1 {
            var best: (rank: Int, id: Int, at: Int)?
            for i in 0..<(symbols.count - 1) {
                if let m = merges[BPEModel.key(symbols[i], symbols[i + 1])], m.rank < (best?.rank ?? Int.max) {
                    best = (m.rank, m.id, i)
                }
            }
            guard let b = best else { break }
            symbols[b.at] = b.id
            symbols.remove(at: b.at + 1)
        }
        return symbols
    }
}
