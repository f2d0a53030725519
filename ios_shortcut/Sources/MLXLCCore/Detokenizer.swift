import Foundation

/// How a tokenizer.json turns tokens back into text: byte-level (GPT-2 family), or
/// sentencepiece-style (replace "▁" by " ", <0xXX> byte fallback, strip the leading space).
struct TokenDecoder: Sendable {
    var byteLevel = false
    var replacements: [(String, String)] = []
    var byteFallback = false
    /// How many leading spaces of the whole output to drop (Strip decoder, Metaspace prepend).
    var stripLeadingSpaces = 0

    init(_ spec: Any?) throws {
        guard let spec = spec as? JSON else { return }
        try add(spec)
    }

    private mutating func add(_ spec: JSON) throws {
        switch spec["type"] as? String {
        case "Sequence":
            for item in spec["decoders"] as? [JSON] ?? [] { try add(item) }
        case "ByteLevel":
            byteLevel = true
        case "Replace":
            guard let pattern = (spec["pattern"] as? JSON)?["String"] as? String else {
                throw LCError.unsupportedTokenizer("Replace decoder with a regex pattern")
            }
            replacements.append((pattern, spec["content"] as? String ?? ""))
        case "ByteFallback":
            byteFallback = true
        case "Fuse":
            break  // streaming concatenates anyway
        case "Strip":
            guard (spec["content"] as? String) == " ", (spec["stop"] as? Int ?? 0) == 0 else {
                throw LCError.unsupportedTokenizer("Strip decoder \(spec)")
            }
            stripLeadingSpaces = spec["start"] as? Int ?? 0
        case "Metaspace":
            let replacement = spec["replacement"] as? String ?? "\u{2581}"
            replacements.append((replacement, " "))
            let scheme = spec["prepend_scheme"] as? String ?? ((spec["add_prefix_space"] as? Bool ?? true) ? "always" : "never")
            if scheme != "never" { stripLeadingSpaces = 1 }
        case let other:
            throw LCError.unsupportedTokenizer("decoder \(other ?? "?")")
        }
    }

    /// The byte value of a "<0xAB>" token.
    static func fallbackByte(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }
}

/// Turns generated tokens into text as they arrive, never splitting a UTF-8 character: bytes of
/// an incomplete character wait for the next token. The concatenated output equals
/// `tokenizers`' decode (skip_special_tokens) of the whole sequence, invalid bytes included
/// (byte-level: one U+FFFD per maximal invalid subpart; byte fallback: one per byte token of
/// an invalid run, as tokenizers' ByteFallback decoder does).
public struct StreamingDetokenizer {
    let tokenizer: Tokenizer
    let skipSpecialTokens: Bool
    var pending: [UInt8] = []
    var pendingFallbackTokens = 0
    var spacesToStrip: Int

    public init(_ tokenizer: Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        spacesToStrip = tokenizer.decoder.stripLeadingSpaces
    }

    /// The text this token completes (often "", sometimes several characters).
    public mutating func append(_ id: Int) -> String {
        guard id >= 0, id < tokenizer.tokens.count, let token = tokenizer.tokens[id] else { return "" }
        if skipSpecialTokens && tokenizer.specialIds.contains(id) { return "" }
        let decoder = tokenizer.decoder
        if decoder.byteLevel {
            pending += ByteLevel.bytes(of: token) ?? Array(token.utf8)
            let cut = StreamingDetokenizer.completePrefix(pending)
            let text = String(decoding: pending[..<cut], as: UTF8.self)
            pending.removeFirst(cut)
            return emit(text)
        }
        if decoder.byteFallback, let byte = TokenDecoder.fallbackByte(token) {
            pending.append(byte)
            pendingFallbackTokens += 1
            return ""
        }
        var text = token
        for (pattern, content) in decoder.replacements { text = text.replacingOccurrences(of: pattern, with: content) }
        return emit(flushFallback() + text)
    }

    /// What is still held back, with replacement characters for incomplete bytes.
    public mutating func finish() -> String {
        if tokenizer.decoder.byteLevel {
            let text = String(decoding: pending, as: UTF8.self)
            pending = []
            return emit(text)
        }
        return emit(flushFallback())
    }

    private mutating func flushFallback() -> String {
        defer {
            pending = []
            pendingFallbackTokens = 0
        }
        if pending.isEmpty { return "" }
        // tokenizers' ByteFallback: a run of byte tokens is valid UTF-8 or is all U+FFFD.
        if let text = String(validating: pending, as: UTF8.self) { return text }
        return String(repeating: "\u{FFFD}", count: pendingFallbackTokens)
    }

    private mutating func emit(_ text: String) -> String {
        guard spacesToStrip > 0, !text.isEmpty else { return text }
        var out = Substring(text)
        while spacesToStrip > 0, out.first == " " {
            out = out.dropFirst()
            spacesToStrip -= 1
        }
        if !out.isEmpty { spacesToStrip = 0 }
        return String(out)
    }

    /// Length of the longest prefix that does not end inside a character that later bytes could
    /// still complete. What follows it is a well-formed start of a multi-byte sequence.
    static func completePrefix(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var lead = n - 1
        while lead >= 0 && lead >= n - 3 && bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0, lead >= n - 3 else { return n }
        let b0 = bytes[lead]
        let need: Int
        switch b0 {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return n
        }
        let have = n - lead
        if have >= need { return n }
        // The second byte's range depends on the lead (no overlongs, surrogates or > U+10FFFF).
        if have >= 2 {
            let b1 = bytes[lead + 1]
            let ok: Bool
            switch b0 {
            case 0xE0: ok = (0xA0...0xBF).contains(b1)
            case 0xED: ok = (0x80...0x9F).contains(b1)
            case 0xF0: ok = (0x90...0xBF).contains(b1)
            case 0xF4: ok = (0x80...0x8F).contains(b1)
            default: ok = (0x80...0xBF).contains(b1)
            }
            if !ok { return n }
        }
        return lead
    }
}
