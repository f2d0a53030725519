import Foundation

/// Prompt token ids for a composition and a conversation, as mlx-lc would feed them.
public struct PromptBuilder: Sendable {
    public let manifest: Manifest
    public let tokenizer: Tokenizer

    /// Checks that the tokenizer matches the manifest.
    public init(manifest: Manifest, tokenizer: Tokenizer) throws {
        try manifest.check(tokenizer: tokenizer)
        self.manifest = manifest
        self.tokenizer = tokenizer
    }

    /// Prompt ids as mlx-lm makes them: BOS first when the model wants one and the prompt
    /// does not already start with it (a chat template usually writes it).
    public func ids(forPrompt prompt: String) -> [Int] {
        var ids = tokenizer.encode(prompt)
        if manifest.tokenizer.addBos, let bos = manifest.tokenizer.bosTokenId {
            let bosText = tokenizer.tokens.indices.contains(bos) ? tokenizer.tokens[bos] ?? "" : ""
            if bosText.isEmpty || !prompt.unicodeScalars.starts(with: bosText.unicodeScalars) { ids.insert(bos, at: 0) }
        }
        return ids
    }

    /// Prompt ids for `text`, leaving `reserve` tokens of the context for the reply. Too long a
    /// conversation loses whole lines from its start (then words, then characters, if its last
    /// line alone is too long) and says so; `truncate: false` throws instead.
    public func fit(text: String, composition: Manifest.Composition, reserve: Int,
                    truncate: Bool = true) throws -> (ids: [Int], truncation: Truncation?) {
        let body = Array(PythonWhitespace.strip(text).unicodeScalars)
        if body.isEmpty { throw LCError.emptyInput }
        let limit = manifest.model.contextLength - max(1, min(reserve, manifest.model.contextLength / 2))
        func encoded(from cut: Int) -> [Int] {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: body[cut...])
            return ids(forPrompt: composition.prompt.prefix + PythonWhitespace.strip(String(view)) + composition.prompt.suffix)
        }
        let full = encoded(from: 0)
        if full.count <= limit { return (full, nil) }
        if !truncate { throw LCError.inputTooLong(promptTokens: full.count, limit: limit) }

        let lineStarts = body.indices.filter { $0 > 0 && body[$0 - 1] == "\n" }
        // Smallest cut among `cuts` (ascending) that fits; fewer tokens as the cut moves right.
        func firstFitting(_ cuts: [Int]) -> Int? {
            var lo = 0, hi = cuts.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if encoded(from: cuts[mid]).count <= limit { hi = mid } else { lo = mid + 1 }
            }
            return lo < cuts.count ? cuts[lo] : nil
        }
        var cut = firstFitting(lineStarts)
        var droppedLines = cut.map { c in lineStarts.filter { $0 <= c }.count } ?? 0
        if cut == nil {
            // The last line alone is too long: cut inside it, at word starts, then anywhere.
            let lastLine = lineStarts.last ?? 0
            droppedLines = 0
            let wordStarts = (lastLine..<body.count).filter {
                $0 > lastLine && Scanners.isSpace(body[$0 - 1]) && !Scanners.isSpace(body[$0])
            }
            cut = firstFitting(wordStarts) ?? firstFitting(Array((lastLine + 1)..<body.count))
        }
        guard let c = cut else {
            throw LCError.inputTooLong(promptTokens: encoded(from: body.count - 1).count, limit: limit)
        }
        let truncation = Truncation(droppedCharacters: c, keptCharacters: body.count - c, droppedLines: droppedLines,
                                    promptTokensBefore: full.count, promptTokenLimit: limit)
        return (encoded(from: c), truncation)
    }
}
