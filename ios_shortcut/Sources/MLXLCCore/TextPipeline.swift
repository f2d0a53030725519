import Foundation

/// The normalizer and pre-tokenizer stages of a tokenizer.json, parsed into plain values.
/// Supported: the components of GPT-2, Llama 2/3, Mistral and Qwen2 exports; anything else is
/// a readable `LCError.unsupportedTokenizer` at load time, never a silent mis-tokenization.

typealias JSON = [String: Any]

/// A split pattern: a hand-written scanner for the known regexes, else Swift Regex.
enum SplitPattern: @unchecked Sendable {  // Regex is immutable once built
    case gpt2
    case llama3(maxDigits: Int)
    case literal([Unicode.Scalar])
    case regex(Regex<AnyRegexOutput>)

    static func make(_ spec: Any?, forceRegex: Bool) throws -> SplitPattern {
        guard let spec = spec as? JSON else { throw LCError.unsupportedTokenizer("Split without a pattern") }
        if let literal = spec["String"] as? String { return .literal(Array(literal.unicodeScalars)) }
        guard let pattern = spec["Regex"] as? String else {
            throw LCError.unsupportedTokenizer("Split pattern \(spec)")
        }
        if !forceRegex {
            switch pattern {
            case Scanners.gpt2Pattern: return .gpt2
            case Scanners.llama3Pattern: return .llama3(maxDigits: 3)
            case Scanners.qwen2Pattern: return .llama3(maxDigits: 1)
            default: break
            }
        }
        return try .regex(compile(pattern))
    }

    static func compile(_ pattern: String) throws -> Regex<AnyRegexOutput> {
        do {
            // Scalar semantics: Oniguruma matches code points, not grapheme clusters.
            return try Regex(pattern).matchingSemantics(.unicodeScalar)
        } catch {
            throw LCError.unsupportedTokenizer("split regex \(pattern) (\(error))")
        }
    }

    func matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case .gpt2: return Scanners.gpt2(s)
        case .llama3(let maxDigits): return Scanners.llama3(s, maxDigits: maxDigits)
        case .literal(let lit):
            guard !lit.isEmpty else { return [] }
            var ranges: [Range<Int>] = []
            var i = 0
            while i + lit.count <= s.count {
                if Array(s[i..<(i + lit.count)]) == lit {
                    ranges.append(i..<(i + lit.count))
                    i += lit.count
                } else {
                    i += 1
                }
            }
            return ranges
        case .regex(let regex):
            var text = String.UnicodeScalarView()
            text.append(contentsOf: s)
            let string = String(text)
            var ranges: [Range<Int>] = []
            var offset = 0
            var cursor = string.unicodeScalars.startIndex
            for m in string.matches(of: regex) where !m.range.isEmpty {
                offset += string.unicodeScalars.distance(from: cursor, to: m.range.lowerBound)
                let length = string.unicodeScalars.distance(from: m.range.lowerBound, to: m.range.upperBound)
                ranges.append(offset..<(offset + length))
                offset += length
                cursor = m.range.upperBound
            }
            return ranges
        }
    }
}

/// A piece of text between pre-tokenizer steps. `atStart`: it begins at offset 0 of the input
/// (Metaspace's "first" prepend scheme looks at that).
struct Piece {
    var scalars: [Unicode.Scalar]
    var atStart: Bool
}

enum Normalizer {
    case sequence([Normalizer])
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replace(SplitPattern, String)
    case strip(left: Bool, right: Bool)

    static func parse(_ spec: Any?, forceRegex: Bool) throws -> Normalizer? {
        guard let spec = spec as? JSON else { return nil }
        switch spec["type"] as? String {
        case "Sequence":
            let items = spec["normalizers"] as? [Any] ?? []
            return .sequence(try items.compactMap { try parse($0, forceRegex: forceRegex) })
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(spec["prepend"] as? String ?? "")
        case "Replace":
            return .replace(try SplitPattern.make(spec["pattern"], forceRegex: forceRegex), spec["content"] as? String ?? "")
        case "Strip":
            return .strip(left: spec["strip_left"] as? Bool ?? true, right: spec["strip_right"] as? Bool ?? true)
        case let other:
            throw LCError.unsupportedTokenizer("normalizer \(other ?? "?")")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .sequence(let items): return items.reduce(text) { $1.apply($0) }
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase: return text.lowercased()
        case .prepend(let p): return text.isEmpty ? text : p + text
        case .replace(let pattern, let content):
            let s = Array(text.unicodeScalars)
            var out = String.UnicodeScalarView()
            var last = 0
            for r in pattern.matches(s) {
                out.append(contentsOf: s[last..<r.lowerBound])
                out.append(contentsOf: content.unicodeScalars)
                last = r.upperBound
            }
            out.append(contentsOf: s[last...])
            return String(out)
        case .strip(let left, let right):
            var s = Substring(text)
            if left { s = s.drop(while: { $0.unicodeScalars.allSatisfy(\.properties.isWhitespace) }) }
            if right {
                while let c = s.last, c.unicodeScalars.allSatisfy(\.properties.isWhitespace) { s = s.dropLast() }
            }
            return String(s)
        }
    }
}

enum PreTokenizer {
    enum Behavior: String { case removed, isolated, mergedWithPrevious, mergedWithNext }

    case sequence([PreTokenizer])
    case byteLevel(addPrefixSpace: Bool, split: SplitPattern?)
    case split(SplitPattern, Behavior, invert: Bool)
    case metaspace(replacement: Unicode.Scalar, prepend: String, split: Bool)

    static func parse(_ spec: Any?, forceRegex: Bool) throws -> PreTokenizer? {
        guard let spec = spec as? JSON else { return nil }
        switch spec["type"] as? String {
        case "Sequence":
            let items = spec["pretokenizers"] as? [Any] ?? []
            return .sequence(try items.compactMap { try parse($0, forceRegex: forceRegex) })
        case "ByteLevel":
            let useRegex = spec["use_regex"] as? Bool ?? true
            let split = useRegex ? try SplitPattern.make(["Regex": Scanners.gpt2Pattern], forceRegex: forceRegex) : nil
            return .byteLevel(addPrefixSpace: spec["add_prefix_space"] as? Bool ?? false, split: split)
        case "Split":
            let raw = (spec["behavior"] as? String ?? "Isolated")
            let name = raw.prefix(1).lowercased() + raw.dropFirst()
            guard let behavior = Behavior(rawValue: name) else {
                throw LCError.unsupportedTokenizer("Split behavior \(raw)")
            }
            return .split(try SplitPattern.make(spec["pattern"], forceRegex: forceRegex), behavior,
                          invert: spec["invert"] as? Bool ?? false)
        case "Metaspace":
            let replacement = (spec["replacement"] as? String ?? "\u{2581}").unicodeScalars.first ?? "\u{2581}"
            // Older files say add_prefix_space instead of prepend_scheme.
            let legacy = (spec["add_prefix_space"] as? Bool ?? true) ? "always" : "never"
            return .metaspace(replacement: replacement, prepend: spec["prepend_scheme"] as? String ?? legacy,
                              split: spec["split"] as? Bool ?? true)
        case let other:
            throw LCError.unsupportedTokenizer("pre-tokenizer \(other ?? "?")")
        }
    }

    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .sequence(let items):
            return items.reduce(pieces) { $1.apply($0) }
        case .byteLevel(let addPrefixSpace, let pattern):
            return pieces.flatMap { piece -> [Piece] in
                var p = piece
                if addPrefixSpace && p.scalars.first != " " { p.scalars.insert(" ", at: 0) }
                let parts = pattern.map { PreTokenizer.split(p, $0.matches(p.scalars), .isolated, invert: false) } ?? [p]
                return parts.map { part in
                    var bytes = String.UnicodeScalarView()
                    bytes.append(contentsOf: part.scalars)
                    return Piece(scalars: Array(ByteLevel.encode(String(bytes)).unicodeScalars), atStart: part.atStart)
                }
            }
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap { PreTokenizer.split($0, pattern.matches($0.scalars), behavior, invert: invert) }
        case .metaspace(let replacement, let prepend, let split):
            return pieces.flatMap { piece -> [Piece] in
                var p = piece
                p.scalars = p.scalars.map { $0 == " " ? replacement : $0 }
                let wants = prepend == "always" || (prepend == "first" && p.atStart)
                if wants && p.scalars.first != replacement { p.scalars.insert(replacement, at: 0) }
                guard split else { return [p] }
                let marks = p.scalars.indices.filter { p.scalars[$0] == replacement }.map { $0..<($0 + 1) }
                return PreTokenizer.split(p, marks, .mergedWithNext, invert: false)
            }
        }
    }

    /// Cuts a piece at the matches, as tokenizers' `SplitDelimiterBehavior` does.
    static func split(_ piece: Piece, _ matches: [Range<Int>], _ behavior: Behavior, invert: Bool) -> [Piece] {
        var spans: [(Range<Int>, Bool)] = []  // (range, is a delimiter)
        var last = 0
        for m in matches {
            if m.lowerBound > last { spans.append((last..<m.lowerBound, invert)) }
            spans.append((m, !invert))
            last = m.upperBound
        }
        if last < piece.scalars.count { spans.append((last..<piece.scalars.count, invert)) }
        var ranges: [Range<Int>] = []
        switch behavior {
        case .isolated:
            ranges = spans.map(\.0)
        case .removed:
            ranges = spans.filter { !$0.1 }.map(\.0)
        case .mergedWithPrevious:
            var previousWasDelimiter = false
            for (r, delim) in spans {
                if delim && !previousWasDelimiter, let prev = ranges.last {
                    ranges[ranges.count - 1] = prev.lowerBound..<r.upperBound
                } else {
                    ranges.append(r)
                }
                previousWasDelimiter = delim
            }
        case .mergedWithNext:
            var pending: Range<Int>?
            for (r, delim) in spans {
                if delim {
                    if let p = pending { ranges.append(p) }
                    pending = r
                } else if let p = pending {
                    ranges.append(p.lowerBound..<r.upperBound)
                    pending = nil
                } else {
                    ranges.append(r)
                }
            }
            if let p = pending { ranges.append(p) }
        }
        return ranges.filter { !$0.isEmpty }.map {
            Piece(scalars: Array(piece.scalars[$0]), atStart: piece.atStart && $0.lowerBound == 0)
        }
    }
}
