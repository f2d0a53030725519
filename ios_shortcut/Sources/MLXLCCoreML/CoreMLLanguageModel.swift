#if canImport(CoreML)
import CoreML
import Foundation
import MLXLCCore

/// `LanguageModel` over one composition of an mlx-lc Core ML export: the composition's
/// `prefill` and `decode` functions (named in manifest.json) run against one `MLState` that
/// holds the KV cache. Compute units default to CPU and Neural Engine: a Shortcut runs the
/// intent in the background, where iOS restricts the GPU.
///
/// Inputs follow the manifest's io section: token ids (int32 [1, T]) and an additive causal
/// mask (fp16 [1, 1, T, P+T]; 0 where visible, the lowest fp16 elsewhere); the number P of
/// cached tokens is implied by the mask's width, as in Apple's Llama export.
@available(iOS 18.0, macOS 15.0, *)
public final class CoreMLLanguageModel: LanguageModel {
    public let contextLength: Int
    public let composition: Manifest.Composition
    private let prefillModel: MLModel
    private let decodeModel: MLModel
    private let io: ModelIO
    private let maxPrefill: Int
    private var state: MLState
    private var position = 0

    /// Loads the composition's functions from a compiled model (.mlmodelc) and checks them
    /// against the manifest.
    public static func load(compiledModel url: URL, manifest: Manifest, composition: Manifest.Composition,
                            computeUnits: MLComputeUnits = .cpuAndNeuralEngine) async throws -> CoreMLLanguageModel {
        let io = try ModelIO(manifest.io)
        let prefill = try await loadFunction(composition.functions.prefill, url: url, computeUnits: computeUnits)
        let decode = composition.functions.decode == composition.functions.prefill
            ? prefill : try await loadFunction(composition.functions.decode, url: url, computeUnits: computeUnits)
        try check(prefill, function: composition.functions.prefill, manifest: manifest, io: io)
        try check(decode, function: composition.functions.decode, manifest: manifest, io: io)
        return CoreMLLanguageModel(manifest: manifest, composition: composition, io: io, prefill: prefill, decode: decode)
    }

    private init(manifest: Manifest, composition: Manifest.Composition, io: ModelIO, prefill: MLModel, decode: MLModel) {
        contextLength = manifest.model.contextLength
        self.composition = composition
        self.io = io
        prefillModel = prefill
        decodeModel = decode
        maxPrefill = max(1, min(manifest.io.maxPrefillTokens ?? contextLength, contextLength))
        // The exporter declares the same states in both functions, so one MLState serves both.
        state = decode.makeState()
    }

    public func reset() async throws {
        state = decodeModel.makeState()
        position = 0
    }

    public func prefill(_ tokens: [Int]) async throws -> [Float] {
        guard !tokens.isEmpty else { throw LCError.emptyInput }
        var logits: [Float] = []
        var start = 0
        while start < tokens.count {  // chunks when the prefill function takes fewer tokens than the prompt
            let end = min(tokens.count, start + maxPrefill)
            logits = try await run(prefillModel, Array(tokens[start..<end]))
            start = end
        }
        return logits
    }

    public func decode(_ token: Int) async throws -> [Float] {
        try await run(decodeModel, [token])
    }

    private func run(_ model: MLModel, _ tokens: [Int]) async throws -> [Float] {
        let t = tokens.count
        let p = position
        guard p + t <= contextLength else {
            throw LCError.inputTooLong(promptTokens: p + t, limit: contextLength)
        }
        var features: [String: MLFeatureValue] = [:]
        let ids = try MLMultiArray(shape: [1, NSNumber(value: t)], dataType: .int32)
        ids.withUnsafeMutableBytes { raw, strides in
            let ptr = raw.bindMemory(to: Int32.self)
            for (i, token) in tokens.enumerated() { ptr[i * strides[1]] = Int32(truncatingIfNeeded: token) }
        }
        features[io.tokens] = MLFeatureValue(multiArray: ids)
        if let maskName = io.mask {
            let width = p + t
            let mask = try MLMultiArray(shape: [1, 1, NSNumber(value: t), NSNumber(value: width)], dataType: .float16)
            mask.withUnsafeMutableBytes { raw, strides in
                let ptr = raw.bindMemory(to: UInt16.self)
                for i in 0..<t {
                    for j in 0..<width {
                        // Query i sits at position p + i and sees keys 0...p + i.
                        ptr[i * strides[2] + j * strides[3]] = j <= p + i ? 0 : Half.lowestBits
                    }
                }
            }
            features[maskName] = MLFeatureValue(multiArray: mask)
        }
        let input = try MLDictionaryFeatureProvider(dictionary: features)
        let output: MLFeatureProvider
        do {
            output = try await model.prediction(from: input, using: state, options: MLPredictionOptions())
        } catch {
            throw LCError.modelFailure("Core ML prediction failed at position \(p): \(error.localizedDescription)")
        }
        position = p + t
        guard let logits = output.featureValue(for: io.logits)?.multiArrayValue else {
            throw LCError.manifestMismatch("the model has no output named \(io.logits)")
        }
        return try CoreMLLanguageModel.lastRow(logits)
    }

    /// The logits of the last position of a [1, T, V] (or [T, V]) array, fp16 or fp32, honouring strides
    /// (mlx-lc's prefill and decode both return [1, 1, V]: the last position only).
    static func lastRow(_ array: MLMultiArray) throws -> [Float] {
        let shape = array.shape.map(\.intValue)
        let strides = array.strides.map(\.intValue)
        guard shape.count >= 2, let vocab = shape.last else {
            throw LCError.modelFailure("logits have shape \(shape), expected [1, T, vocab]")
        }
        let base = (shape[shape.count - 2] - 1) * strides[strides.count - 2]
        let step = strides[strides.count - 1]
        var row = [Float](repeating: 0, count: vocab)
        switch array.dataType {
        case .float16:
            array.withUnsafeBytes { raw in
                let ptr = raw.bindMemory(to: UInt16.self)
                for v in 0..<vocab { row[v] = Half.float(ptr[base + v * step]) }
            }
        case .float32:
            array.withUnsafeBytes { raw in
                let ptr = raw.bindMemory(to: Float.self)
                for v in 0..<vocab { row[v] = ptr[base + v * step] }
            }
        default:
            throw LCError.manifestMismatch("logits are \(array.dataType.rawValue), expected float16 or float32")
        }
        return row
    }

    private static func loadFunction(_ name: String, url: URL, computeUnits: MLComputeUnits) async throws -> MLModel {
        let config = MLModelConfiguration()
        config.computeUnits = computeUnits
        config.functionName = name
        do {
            return try await MLModel.load(contentsOf: url, configuration: config)
        } catch {
            throw LCError.manifestMismatch("the model package cannot load function \"\(name)\" named in the manifest (\(error.localizedDescription))")
        }
    }

    /// Names and state shapes of a loaded function against the manifest; every difference in one error.
    private static func check(_ model: MLModel, function: String, manifest: Manifest, io: ModelIO) throws {
        var problems: [String] = []
        let description = model.modelDescription
        let inputs = Set(description.inputDescriptionsByName.keys)
        let expected = Set([io.tokens] + (io.mask.map { [$0] } ?? []))
        if inputs != expected {
            problems.append("\(function) takes inputs \(inputs.sorted()), the manifest names \(expected.sorted())")
        }
        if description.outputDescriptionsByName[io.logits] == nil {
            problems.append("\(function) has no output \(io.logits)")
        }
        let states = description.stateDescriptionsByName
        if Set(states.keys) != Set(io.states) {
            problems.append("\(function) has states \(states.keys.sorted()), the manifest names \(io.states)")
        }
        for (name, feature) in states {
            guard let constraint = feature.stateConstraint, let spec = manifest.io.states[name] else { continue }
            let actual = constraint.bufferShape.map { ($0 as NSNumber).intValue }
            let declared = spec.shape.map { dim -> Int? in
                if case .fixed(let n) = dim { return n }
                return nil
            }
            if declared.count != actual.count || zip(declared, actual).contains(where: { $0 != nil && $0 != $1 }) {
                problems.append("state \(name) is \(actual) in \(function), the manifest says \(spec.shape.map(\.description))")
            }
        }
        if !problems.isEmpty { throw LCError.manifestMismatch(problems.joined(separator: "; ")) }
    }
}
#endif
