/// Hand-written matchers for the split regexes that byte-level BPE tokenizers use, so the app
/// splits text exactly as Hugging Face `tokenizers` (Oniguruma) does, fast and without a regex
/// engine: GPT-2's (also inside every ByteLevel pre-tokenizer), Llama 3's and Qwen2's.
/// Any other pattern falls back to Swift Regex (see `SplitPattern`).
///
/// Classes follow Oniguruma: \p{L} and \p{N} are Unicode general categories, \s is White_Space.
/// Each function returns the match ranges, in scalar offsets, of the leftmost-first alternation.
enum Scanners {
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII { return (s.value | 0x20) >= 0x61 && (s.value | 0x20) <= 0x7A }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII { return s.value >= 0x30 && s.value <= 0x39 }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII { return s.value == 0x20 || (s.value >= 0x09 && s.value <= 0x0D) }
        return s.properties.isWhitespace
    }

    static func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }
    static func isNewline(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at i. Case-insensitive matching also folds U+017F
    /// (long s) to "s", as Oniguruma's (?i) does.
    static func contraction(_ s: [Unicode.Scalar], _ i: Int, ignoreCase: Bool) -> Int? {
        guard s[i] == "'", i + 1 < s.count else { return nil }
        func lower(_ k: Int) -> Unicode.Scalar? {
            guard k < s.count else { return nil }
            let c = s[k]
            if !ignoreCase { return c }
            if c == "\u{17F}" { return "s" }
            if c.value >= 0x41 && c.value <= 0x5A { return Unicode.Scalar(c.value + 0x20) }
            return c
        }
        switch lower(i + 1) {
        case "s", "t", "m", "d": return 2
        case "r": return lower(i + 2) == "e" ? 3 : nil
        case "v": return lower(i + 2) == "e" ? 3 : nil
        case "l": return lower(i + 2) == "l" ? 3 : nil
        default: return nil
        }
    }

    /// ` ?X+`: end of an optional space followed by a run of `cls`.
    static func spaceThenRun(_ s: [Unicode.Scalar], _ i: Int, _ cls: (Unicode.Scalar) -> Bool) -> Int? {
        var j = i
        if s[j] == " " { j += 1 }
        guard j < s.count, cls(s[j]) else { return nil }
        while j < s.count && cls(s[j]) { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+`: a whitespace run, leaving its last space to a following word.
    static func whitespace(_ s: [Unicode.Scalar], _ i: Int) -> Int? {
        var j = i
        while j < s.count && isSpace(s[j]) { j += 1 }
        if j == i { return nil }
        if j == s.count || j - 1 == i { return j }
        return j - 1
    }

    static func gpt2(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        scan(s) { i in
            contraction(s, i, ignoreCase: false).map { i + $0 }
                ?? spaceThenRun(s, i, isLetter) ?? spaceThenRun(s, i, isNumber)
                ?? spaceThenRun(s, i, isOther) ?? whitespace(s, i)
        }
    }

    /// Llama 3 (maxDigits 3) and Qwen2 (maxDigits 1).
    static func llama3(_ s: [Unicode.Scalar], maxDigits: Int) -> [Range<Int>] {
        scan(s) { i in
            if let n = contraction(s, i, ignoreCase: true) { return i + n }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            var j = i
            if !isLetter(s[j]) && !isNumber(s[j]) && !isNewline(s[j]) && j + 1 < s.count && isLetter(s[j + 1]) { j += 1 }
            if isLetter(s[j]) {
                while j < s.count && isLetter(s[j]) { j += 1 }
                return j
            }
            // \p{N}{1,maxDigits}
            j = i
            while j < s.count && j - i < maxDigits && isNumber(s[j]) { j += 1 }
            if j > i { return j }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            if var end = spaceThenRun(s, i, isOther) {
                while end < s.count && isNewline(s[end]) { end += 1 }
                return end
            }
            // \s*[\r\n]+ : the whitespace run up to and including its last newline
            j = i
            var lastNewline: Int?
            while j < s.count && isSpace(s[j]) {
                if isNewline(s[j]) { lastNewline = j }
                j += 1
            }
            if let m = lastNewline { return m + 1 }
            return whitespace(s, i)
        }
    }

    /// Runs `matchEnd` at each position: a match when it returns an end, else the scalar is
    /// left unmatched (a gap), as a regex search would skip it.
    static func scan(_ s: [Unicode.Scalar], _ matchEnd: (Int) -> Int?) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var i = 0
        while i < s.count {
            if let end = matchEnd(i), end > i {
                ranges.append(i..<end)
                i = end
            } else {
                i += 1
            }
        }
        return ranges
    }
}
