import Foundation

/// The compositions an installed export offers, read from its manifest.json whenever they are
/// asked for. Nothing about them is compiled into the app, so a Shortcut's Mode parameter lists
/// whatever the installed export holds (any task names, two tasks or more per composition), and
/// installing a new export needs no rebuild.
///
/// Only manifest.json is read, not the tokenizer or the model: Shortcuts asks for the list often
/// (each time the Mode picker opens, each time a saved Shortcut runs), and must get it quickly.
/// The whole manifest is still validated, so a mode is never offered from an export that the
/// intent would then refuse to run.
public enum CompositionCatalog {
    /// The compositions in manifest.json's bytes, in the exporter's order.
    public static func compositions(from data: Data) throws -> [Manifest.Composition] {
        try Manifest.decode(data).compositions
    }

    /// The compositions of the manifest.json at `url`; `LCError.noModelInstalled` when it is absent.
    public static func compositions(contentsOf url: URL) throws -> [Manifest.Composition] {
        try Manifest.load(contentsOf: url).compositions
    }

    /// The compositions of the first of `directories` holding a manifest.json, the folder the app
    /// would load its model from (see `ModelFolder.locate`).
    public static func installed(in directories: [URL]) throws -> [Manifest.Composition] {
        let folder = try ModelFolder.locate(in: directories)
        return try compositions(contentsOf: folder.appendingPathComponent("manifest.json"))
    }
}

extension Manifest.Composition {
    /// The single tasks this composition chains, in order: "action-items+japanese" gives
    /// ["action-items", "japanese"], "summarize+bullets+es" three. Taken from `task`, which
    /// names every step: `primary`/`secondary` name only the first and the last. A manifest
    /// without `task` falls back to those two.
    public var tasks: [String] {
        if let task, !task.isEmpty {
            return task.split(separator: "+", omittingEmptySubsequences: true).map(String.init)
        }
        return [primary, secondary].compactMap { $0 }
    }
}
