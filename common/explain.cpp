// See explain.hpp. The layout rules are SPEC §16's; the comments below refer
// to its wording.
#include "common/explain.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.hpp"
#include "common/leaf_config.hpp"

namespace durable::explain {

namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------
// Characters: lengths and cuts count UTF-8 code points, not bytes.

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::size_t char_count(std::string_view text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) { return !is_continuation_byte(c); }));
}

// Byte length of the first `chars` characters.
std::size_t byte_length_of_prefix(std::string_view text, std::size_t chars) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (is_continuation_byte(text[i])) continue;
        if (seen == chars) return i;
        ++seen;
    }
    return text.size();
}

// Over `limit` characters: the first `limit - 3` and "...".
std::string shorten(const std::string &text, std::size_t limit) {
    if (char_count(text) <= limit) return text;
    return text.substr(0, byte_length_of_prefix(text, limit - 3)) + "...";
}

std::string one_line(std::string text) {
    std::replace_if(text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
    return text;
}

std::string pad_right(const std::string &line, std::size_t width) {
    const std::size_t chars = char_count(line);
    return chars >= width ? line : line + std::string(width - chars, ' ');
}

// ---------------------------------------------------------------------------
// Labels

constexpr std::size_t kSqlChars = 50;
constexpr std::size_t kUrlChars = 40;
constexpr std::size_t kBreakValueChars = 20;
constexpr std::size_t kOutputChars = 60;

Json config_of(const GraphNode &node) {
    if (!node.query) return Json::object();
    Json config = Json::parse(*node.query, nullptr, /*allow_exceptions=*/false);
    return config.is_object() ? config : Json::object();
}

std::string string_field(const Json &config, const char *name, const std::string &fallback = "?") {
    const auto it = config.find(name);
    return it != config.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::string http_label(const Json &config) {
    return "HTTP " + string_field(config, "method") + " " + shorten(string_field(config, "url"), kUrlChars);
}

std::string signal_label(const Json &config) {
    std::string label = "SIGNAL '" + string_field(config, "signal_name") + "'";
    const auto timeout = config.find("timeout_seconds");
    if (timeout != config.end() && timeout->is_number_integer())
        label += " (" + std::to_string(timeout->get<std::int64_t>()) + "s)";
    return label;
}

std::string wait_label(const Json &config) {
    std::string label = "WAIT '" + string_field(config, "cron_expr") + "'";
    const auto zone = config.find("timezone");
    if (zone != config.end() && zone->is_string()) label += " (" + zone->get<std::string>() + ")";
    return label;
}

std::string break_label(const Json &config) {
    const auto value = config.find("break_value");
    if (value == config.end() || value->is_null()) return "BREAK";
    const std::string text = value->is_string() ? value->get<std::string>() : value->dump();
    return "BREAK '" + shorten(text, kBreakValueChars) + "'";
}

std::string join_label(const GraphNode &node) {
    const std::size_t branches = (node.left ? 1 : 0) + (node.right ? 1 : 0) + node.extras.size();
    return "JOIN (" + std::to_string(branches) + ")";
}

// "RETRY (up to 3 attempts, 1s ×2 ≤60s)", numbers as float8 prints them.
std::string retry_label(const GraphNode &node) {
    try {
        const leaf::RetryConfig config = leaf::read_retry(node.query);
        return "RETRY (up to " + std::to_string(config.max_attempts) + " attempts, " +
               leaf::float8_text(config.initial_interval_seconds) + "s ×" + leaf::float8_text(config.backoff_rate) +
               " ≤" + leaf::float8_text(config.max_interval_seconds) + "s)";
    } catch (const UserError &) {
        return "RETRY";  // only a stored row written around df.start gets here
    }
}

std::string timeout_label(const GraphNode &node) {
    try {
        return "TIMEOUT " + leaf::float8_text(leaf::read_timeout(node.query).seconds) + "s";
    } catch (const UserError &) {
        return "TIMEOUT";
    }
}

// The label before the name suffix.
std::string base_label(const GraphNode &node) {
    const std::string &type = node.node_type;
    if (type == "SQL") return "SQL: " + shorten(node.query.value_or(""), kSqlChars);
    if (type == "SLEEP") return "SLEEP " + node.query.value_or("?") + "s";
    if (type == "WAIT_SCHEDULE") return wait_label(config_of(node));
    if (type == "HTTP") return http_label(config_of(node));
    if (type == "SIGNAL") return signal_label(config_of(node));
    if (type == "LOOP") return node.condition ? "LOOP (while)" : "LOOP (infinite)";
    if (type == "BREAK") return break_label(config_of(node));
    if (type == "JOIN") return join_label(node);
    if (type == "RETRY") return retry_label(node);
    if (type == "TIMEOUT") return timeout_label(node);
    // THEN chains are flattened, so a THEN line shows only where that cannot happen.
    if (type == "THEN") return "SEQUENCE";
    return type;  // IF, RACE
}

bool shows_name(const GraphNode &node) { return node.node_type != "RACE" && node.node_type != "THEN"; }

const char *marker_suffix(Marker marker) {
    switch (marker) {
        case Marker::none: return "";
        case Marker::completed: return " ✓";
        case Marker::failed: return " ✗";
        case Marker::running: return " ⏳";
        case Marker::pending: return " ○";
        case Marker::skipped: return " ⊘";
    }
    return "";
}

// ---------------------------------------------------------------------------
// Layout

class TreeWriter {
public:
    TreeWriter(const Graph &graph, const MarkerOf &marker_of, const NoteOf &note_of)
        : graph_(graph), marker_of_(marker_of), note_of_(note_of) {}

    std::string write() {
        node(graph_.root(), "", true);
        std::size_t longest = 0;
        for (const std::string &line : lines_) longest = std::max(longest, char_count(line));
        std::string out;
        for (std::size_t i = 0; i < lines_.size(); ++i) {
            if (i > 0) out += '\n';
            out += pad_right(lines_[i], longest + 4);
        }
        return out;
    }

private:
    std::string text_of(NodeIndex index) const {
        const Marker marker = marker_of_ ? marker_of_(index) : Marker::none;
        const std::string note = note_of_ ? note_of_(index) : std::string();
        return node_label(graph_[index]) + note + marker_suffix(marker);
    }

    // Root: no connector; others "└─" when last among siblings, else "├─".
    void node(NodeIndex index, const std::string &prefix, bool is_last) {
        const std::string connector = prefix.empty() ? "" : is_last ? "└─" : "├─";
        if (graph_[index].node_type == "THEN") {
            // First item on the current connector, later ones "→ " at the same
            // prefix; a compound item's children 4 spaces further in.
            const std::vector<NodeIndex> items = sequence_items(index);
            for (std::size_t i = 0; i < items.size(); ++i) {
                lines_.push_back(prefix + (i == 0 ? connector : "→ ") + text_of(items[i]));
                children(items[i], prefix + "    ");
            }
            return;
        }
        lines_.push_back(prefix + connector + text_of(index));
        children(index, prefix.empty() ? "    " : prefix + (is_last ? "    " : "│   "));
    }

    // The steps of a THEN chain, nested THENs on either side flattened.
    std::vector<NodeIndex> sequence_items(NodeIndex then_index) const {
        std::vector<NodeIndex> items;
        std::vector<NodeIndex> pending{then_index};
        while (!pending.empty()) {
            const NodeIndex index = pending.back();
            pending.pop_back();
            const GraphNode &node = graph_[index];
            if (node.node_type != "THEN") {
                items.push_back(index);
                continue;
            }
            if (node.right) pending.push_back(*node.right);
            if (node.left) pending.push_back(*node.left);
        }
        return items;
    }

    // A header at the children prefix, its subtree at prefix + 2.
    void block(const std::string &prefix, const std::string &header, NodeIndex child, bool is_last) {
        lines_.push_back(prefix + header);
        node(child, prefix + "  ", is_last);
    }

    void children(NodeIndex index, const std::string &prefix) {
        const GraphNode &node = graph_[index];
        const std::string &type = node.node_type;
        if (type == "LOOP") {
            if (node.left) block(prefix, "↻ body:", *node.left, true);
            if (node.condition) block(prefix, "? while:", *node.condition, true);
        } else if (type == "RETRY") {
            if (node.left) block(prefix, "↻ attempt:", *node.left, true);
        } else if (type == "TIMEOUT") {
            if (node.left) block(prefix, "⏱ within:", *node.left, true);
        } else if (type == "IF") {
            if (node.condition) block(prefix, "? condition:", *node.condition, true);
            if (node.left) block(prefix, "✓ then:", *node.left, true);
            if (node.right) block(prefix, "✗ else:", *node.right, true);
        } else if (type == "JOIN" || type == "RACE") {
            std::vector<NodeIndex> branches;
            if (node.left) branches.push_back(*node.left);
            if (node.right) branches.push_back(*node.right);
            branches.insert(branches.end(), node.extras.begin(), node.extras.end());
            for (std::size_t i = 0; i < branches.size(); ++i)
                block(prefix, "║ branch " + std::to_string(i + 1) + ":", branches[i], i + 1 == branches.size());
        }
    }

    const Graph &graph_;
    const MarkerOf &marker_of_;
    const NoteOf &note_of_;
    std::vector<std::string> lines_;
};

// ---------------------------------------------------------------------------
// Header

const char *status_icon(const std::string &status) {
    if (status == "completed") return "✓";
    if (status == "failed" || status == "cancelled") return "✗";
    if (status == "running") return "⏳";
    return "○";
}

std::string capitalised(std::string word) {
    if (!word.empty()) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
    return word;
}

// Dry runs validate exactly as df.start does, with stand-in ids, and render
// from the stored form, as instance mode does.
std::string dry_run(const Graph &graph) {
    int next = 0;
    const MaterializedGraph stored = materialize_graph(graph, [&] { return std::to_string(++next); });
    return render_tree(load_stored(stored.root_id, stored.nodes));
}

bool starts_with_sql_keyword(std::string_view text) {
    static const char *const kSpaced[] = {"SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH ",
                                          "CREATE ", "ALTER ",  "DROP ",   "CALL ",   "DO ",
                                          "TRUNCATE ", "GRANT ", "REVOKE ", "EXPLAIN "};
    static const char *const kNewline[] = {"SELECT\n", "INSERT\n", "UPDATE\n", "DELETE\n", "WITH\n"};
    const auto starts = [&](const char *keyword) {
        const std::string_view word(keyword);
        if (text.size() < word.size()) return false;
        for (std::size_t i = 0; i < word.size(); ++i)
            if (std::toupper(static_cast<unsigned char>(text[i])) != word[i]) return false;
        return true;
    };
    return std::any_of(std::begin(kSpaced), std::end(kSpaced), starts) ||
           std::any_of(std::begin(kNewline), std::end(kNewline), starts);
}

bool has_dsl_marker(std::string_view text) {
    for (const char *marker : {"~>", "|=>", "?>", "!>", "@>", "df."})
        if (text.find(marker) != std::string_view::npos) return true;
    return false;
}

bool is_instance_id(std::string_view text) {
    return text.size() == 8 &&
           std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

}  // namespace

const char *const kCannotExplain =
    "Cannot explain input: not a valid Durofut JSON, instance ID, SQL statement, or DSL expression.\n"
    "Hint: DSL expressions use df.*() functions and operators like ~>, |=>, &, |.";

Marker marker_for_status(std::string_view status) {
    if (status == "completed") return Marker::completed;
    if (status == "failed") return Marker::failed;
    if (status == "running") return Marker::running;
    if (status == "pending") return Marker::pending;
    if (status == "skipped" || status == "cancelled") return Marker::skipped;
    return Marker::none;
}

std::string node_label(const GraphNode &node) {
    std::string label = base_label(node);
    if (node.result_name && shows_name(node)) label += " |=> '" + *node.result_name + "'";
    return one_line(std::move(label));
}

std::string render_tree(const Graph &graph, const MarkerOf &marker_of, const NoteOf &note_of) {
    return TreeWriter(graph, marker_of, note_of).write();
}

std::string attempt_note(long long attempts) {
    return attempts > 0 ? " [attempt " + std::to_string(attempts) + "]" : std::string();
}

std::string render_instance(const InstanceSummary &summary, const std::string &tree) {
    std::string out = "Instance: " + summary.id;
    if (summary.label) out += " (" + *summary.label + ")";
    out += "\nStatus:   " + std::string(status_icon(summary.status)) + " " + capitalised(summary.status);
    if (summary.output) out += "\nOutput:   " + shorten(*summary.output, kOutputChars);
    return out + "\n\n" + tree;
}

std::string trim(std::string_view input) {
    const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    while (!input.empty() && is_space(input.front())) input.remove_prefix(1);
    while (!input.empty() && is_space(input.back())) input.remove_suffix(1);
    return std::string(input);
}

InputKind classify(std::string_view trimmed_input) {
    if (is_instance_id(trimmed_input)) return InputKind::instance_id;
    if (looks_like_graph(std::string(trimmed_input))) return InputKind::graph_json;
    const bool marked = has_dsl_marker(trimmed_input);
    if (!marked && starts_with_sql_keyword(trimmed_input)) return InputKind::sql_statement;
    return marked ? InputKind::dsl_expression : InputKind::unexplainable;
}

std::string explain_graph_json(const std::string &json_text) {
    try {
        return dry_run(parse_graph(json_text));
    } catch (const GraphError &e) {
        return e.what();
    } catch (const NotAGraphError &e) {
        return e.what();
    }
}

std::string explain_sql(const std::string &statement) {
    try {
        return dry_run(sql_graph(statement));
    } catch (const GraphError &e) {
        return e.what();
    }
}

}  // namespace durable::explain
