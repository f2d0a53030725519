import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, tiny, and written identically in
/// mlx_lc/ios/sampler.py so a seed gives the same draws on the phone and in Python.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 53 bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
}

public struct SamplingOptions: Sendable, Equatable {
    /// 0 is greedy.
    public var temperature: Double
    /// Nucleus sampling; 1 keeps every token.
    public var topP: Double
    public var seed: UInt64

    public init(temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }
}

/// Greedy, temperature and top-p sampling, step for step the algorithm documented in
/// mlx_lc/ios/sampler.py (all arithmetic in Double, sums in the same order), so that Python
/// and Swift pick the same tokens for the same logits and seed.
public struct Sampler: Sendable {
    public let options: SamplingOptions
    public private(set) var rng: SplitMix64

    public init(_ options: SamplingOptions) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
    }

    public mutating func sample(_ logits: [Float]) -> Int {
        precondition(!logits.isEmpty, "no logits to sample from")
        if options.temperature <= 0 { return Sampler.argmax(logits) }
        let t = options.temperature
        var m = -Double.infinity
        for v in logits { m = max(m, Double(v) / t) }
        var w = [Double](repeating: 0, count: logits.count)
        var total = 0.0
        for i in logits.indices {
            w[i] = exp(Double(logits[i]) / t - m)
            total += w[i]
        }
        let candidates: [Int]?
        var mass = total
        if options.topP < 1 {
            (candidates, mass) = Sampler.nucleus(w, cut: options.topP * total)
        } else {
            candidates = nil
        }
        let target = rng.nextDouble() * mass
        var acc = 0.0
        if let candidates {
            for i in candidates {
                acc += w[i]
                if acc > target { return i }
            }
            return candidates[candidates.count - 1]
        }
        for i in w.indices {
            acc += w[i]
            if acc > target { return i }
        }
        return w.count - 1
    }

    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for (i, v) in logits.enumerated() where v > bestValue {
            best = i
            bestValue = v
        }
        return best
    }

    /// The smallest prefix of tokens by weight (descending, lower index first on ties) whose mass,
    /// summed in that order, reaches `cut`. Sorting a 150k vocabulary per token is slow on a
    /// phone, so it first sorts only the tokens above a threshold: the prefix found among them is
    /// the same prefix a full sort gives, because every token left out weighs less.
    static func nucleus(_ w: [Double], cut: Double) -> ([Int], Double) {
        for threshold in [1e-3, 1e-6, 1e-9, -1.0] {
            var idx = w.indices.filter { w[$0] > threshold }
            idx.sort { w[$0] > w[$1] || (w[$0] == w[$1] && $0 < $1) }
            var mass = 0.0
            for (k, i) in idx.enumerated() {
                mass += w[i]
                if mass >= cut { return (Array(idx[...k]), mass) }
            }
            if threshold < 0 { return (idx, mass) }
        }
        fatalError("unreachable")
    }
}
