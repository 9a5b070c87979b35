// The OData service document of the Graph surface: `GET /beta/$metadata` and
// `GET /v1.0/$metadata`, a CSDL (OData v4 XML) document describing exactly what vppd
// serves — namespace microsoft.graph, its enums, complex and entity types, the bound
// operations on vppTokens, the deviceAppManagement singleton, and (beta) the function
// getExpiringVppTokenCount with the deviceManagement singleton that leads to it.
//
// The types come from graph::ModelSchema (model.h), i.e. from the same property
// tables the JSON writers use, so the document cannot disagree with the responses.
// Internal to graph/; api.cc routes `$metadata` here without authenticating, as
// Graph serves it (the document holds no tenant data).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "graph/model.h"
#include "http/server.h"

namespace vppd::graph {

// The document for `version`: built on first use, then the same string forever.
// Thread-safe.
const std::string& MetadataDocument(ApiVersion version);

// The directory's types (directory.cc): directoryObject, user, group, device,
// managedDevice and deviceManagement, for the $metadata document.
const std::vector<SchemaType>& DirectorySchemaTypes();

// The managedEBooks types and the enums they use (managed_ebooks.cc): managedEBook,
// iosVppEBook, their assignments and targets, and the licence-state types (beta adds
// iosVppEBook's roleScopeTagIds).
const std::vector<SchemaType>& EBookSchemaTypes(ApiVersion version);
const std::vector<SchemaEnum>& EBookSchemaEnums();

// The entity container's members (api.cc, from the route table rather than a second
// list): the first segment of every route served under `version`, $metadata and $batch
// aside, in the table's order. One whose entities are addressed by key right under it
// ("users/{id}") is an entity set; the others ("deviceAppManagement") are singletons.
struct ContainerMembers {
  std::vector<std::string> singletons;
  std::vector<std::string> entity_sets;
};
ContainerMembers RoutedContainer(ApiVersion version);

// Answers `/{version}/$metadata` followed by the segments `rest`: 200 with the
// document (`application/xml`, OData-Version 4.0) for GET; InvalidArgument
// ("Resource not found for the segment ...", graph code BadRequest) when `rest` is not
// empty; 405 with `Allow: GET` for another method (as a response, since the Allow
// header is part of it). Query options are ignored, as Graph ignores them here.
Result<http::Response> MetadataResponse(const http::Request& request, ApiVersion version,
                                        std::span<const std::string> rest);

}  // namespace vppd::graph
