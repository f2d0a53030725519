import AppIntents
import MLXLCCore
import MLXLCCoreML
import SwiftUI
import UniformTypeIdentifiers

/// Try a composition by hand, see what is installed, import an export. The Shortcut does the
/// same work through `ComposeReplyIntent`.
struct ContentView: View {
    @State private var manifest: Manifest?
    @State private var status = "Looking for a model…"
    @State private var composition = ""
    @State private var input = ""
    @State private var output = ""
    @State private var notice: String?
    @State private var maxTokens = 256
    @State private var running = false
    @State private var importing = false

    var body: some View {
        NavigationStack {
            Form {
                Section("Model") {
                    Text(status).font(.footnote)
                    Button("Import an export folder…") { importing = true }
                }
                if let manifest {
                    Section("Compose") {
                        Picker("Mode", selection: $composition) {
                            ForEach(manifest.compositions) { Text($0.title).tag($0.name) }
                        }
                        TextEditor(text: $input).frame(minHeight: 120)
                        Button("Paste") { input = UIPasteboard.general.string ?? input }
                        Stepper("Longest reply: \(maxTokens) tokens", value: $maxTokens, in: 16...1024, step: 16)
                        Button(running ? "Writing…" : "Compose") { Task { await compose() } }
                            .disabled(running || input.isEmpty || composition.isEmpty)
                    }
                    Section("Reply") {
                        if let notice { Text(notice).font(.footnote).foregroundStyle(.secondary) }
                        Text(output).textSelection(.enabled)
                        Button("Copy") { UIPasteboard.general.string = output }.disabled(output.isEmpty)
                    }
                }
            }
            .navigationTitle("MLX LC")
            .task { await load() }
            .fileImporter(isPresented: $importing, allowedContentTypes: [.folder]) { result in
                Task { await importFolder(result) }
            }
        }
    }

    private func load() async {
        do {
            let folder = try await ModelHost.shared.installed()
            manifest = folder.manifest
            // A newly imported export may not have the mode picked before.
            if !folder.manifest.compositions.contains(where: { $0.name == composition }) {
                composition = folder.manifest.compositions.first?.name ?? ""
            }
            let m = folder.manifest.model
            status = "\(m.architecture), \(m.quantization ?? "fp16"), context \(m.contextLength) tokens, "
                + "\(folder.manifest.compositions.count) compositions — \(folder.directory.path)"
        } catch {
            manifest = nil
            status = error.localizedDescription
        }
    }

    private func compose() async {
        running = true
        output = ""
        notice = nil
        defer { running = false }
        let host = ModelHost.shared
        do {
            try await host.begin(text: input, composition: composition, options: GenerationOptions(maxNewTokens: maxTokens))
            let (chunks, sink) = AsyncStream.makeStream(of: String.self)
            let work = Task {
                defer { sink.finish() }
                return try await host.continueReply(until: nil) { sink.yield($0) }
            }
            for await chunk in chunks { output += chunk }
            let reply = try await work.value
            notice = reply.truncation?.notice
        } catch {
            notice = error.localizedDescription
        }
    }

    /// Copies a picked export folder to Documents/Model, where `ModelHost` looks first.
    private func importFolder(_ result: Result<URL, Error>) async {
        do {
            let source = try result.get()
            let scoped = source.startAccessingSecurityScopedResource()
            defer { if scoped { source.stopAccessingSecurityScopedResource() } }
            let fm = FileManager.default
            guard fm.fileExists(atPath: source.appendingPathComponent("manifest.json").path) else {
                status = "That folder has no manifest.json; pick the folder `mlx-lc export coreml` wrote."
                return
            }
            let docs = try fm.url(for: .documentDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            let target = docs.appendingPathComponent("Model")
            try? fm.removeItem(at: target)
            try fm.copyItem(at: source, to: target)
            await ModelHost.shared.reload()
            await load()
            // Shortcuts reads the modes from the new manifest by itself; Siri's phrases need telling.
            MLXLCShortcuts.updateAppShortcutParameters()
            try? await ModelHost.shared.prewarm()
        } catch {
            status = error.localizedDescription
        }
    }
}
