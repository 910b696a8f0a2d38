// The hard limits of SPEC.md §17, in one place so the extension, the daemon and
// the tests agree on them. The GUC ranges of §3 live with the settings.
#pragma once

#include <cstddef>
#include <cstdint>

namespace durable::limits {

// Graph shape (§8): the root is at depth 0, so a node at depth 257 is refused;
// a graph may hold exactly kMaxGraphNodes nodes.
inline constexpr std::size_t kMaxGraphDepth = 256;
inline constexpr std::size_t kMaxGraphNodes = 10000;

// `$name.*` row-set expansion (§11).
inline constexpr std::size_t kMaxRowSetRows = 10000;

// A loop about to start this iteration fails (§10.6).
inline constexpr std::int64_t kMaxLoopIterations = 100000;

// HTTP error body preview (§14).
inline constexpr std::size_t kHttpErrorPreviewBytes = 512;

// df.instance_executions clamps its limit here (§15.4).
inline constexpr std::int64_t kMaxInstanceExecutionsRows = 10000;

// df.list_instances pagination cursor (§15.2).
inline constexpr std::size_t kMaxCursorChars = 512;

}  // namespace durable::limits
