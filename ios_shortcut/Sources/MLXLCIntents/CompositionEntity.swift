#if canImport(AppIntents) && canImport(CoreML)
import AppIntents
import Foundation
import MLXLCCore
import MLXLCCoreML

/// One composition of the installed export ("Summary in Spanish", "Action items in Japanese"...),
/// as the Shortcut's Mode parameter and Siri offer it.
///
/// An entity rather than an enum: an `AppEnum`'s cases are compiled into the app, while an
/// entity's values come from its query at run time. So the modes are whatever the installed
/// export's manifest.json lists, and installing a new export needs no rebuild.
@available(iOS 18.0, macOS 15.0, *)
public struct CompositionEntity: AppEntity {
    public static let typeDisplayRepresentation: TypeDisplayRepresentation = "Mode"
    public static let defaultQuery = CompositionQuery()

    /// The composition's name in manifest.json ("sum_es"). A saved Shortcut keeps this id, so
    /// it keeps working with any later export that still has a composition of that name.
    public let id: String
    public let title: String
    /// "summarize+es": shown under the title, to tell apart compositions with similar titles.
    public let task: String?

    public init(_ composition: Manifest.Composition) {
        id = composition.name
        title = composition.title
        task = composition.task
    }

    public var displayRepresentation: DisplayRepresentation {
        guard let task else { return DisplayRepresentation(title: "\(title)") }
        return DisplayRepresentation(title: "\(title)", subtitle: "\(task)")
    }
}

/// Reads the installed manifest.json each time Shortcuts asks, so the list follows what is
/// installed now (the app's Documents/Model before its bundle, as `ModelHost` loads).
@available(iOS 18.0, macOS 15.0, *)
public struct CompositionQuery: EntityQuery {
    public init() {}

    /// A saved Shortcut's ids against the installed export; an id it no longer has is left
    /// out, and Shortcuts then asks the person to pick a mode again.
    public func entities(for identifiers: [CompositionEntity.ID]) async throws -> [CompositionEntity] {
        let installed = try Self.installed()
        return identifiers.compactMap { id in installed.first { $0.id == id } }
    }

    /// Every installed composition, in the exporter's order: the Mode list, and the values the
    /// App Shortcut phrases ("MLX LC Summary in Spanish") are made from.
    public func suggestedEntities() async throws -> [CompositionEntity] {
        try Self.installed()
    }

    static func installed() throws -> [CompositionEntity] {
        do {
            return try CompositionCatalog.installed(in: ModelHost.searchDirectories).map { CompositionEntity($0) }
        } catch let error as LCError {
            // No model installed, or a broken manifest: say so instead of showing an empty list.
            throw IntentFailure(error)
        }
    }
}
#endif
