// ctest monitoring_files: deploy/monitoring is consistent with itself and
// with df_monitor.operator_metrics().
//   * queries.yaml: every metric column is selected by the query (AS <name>),
//     counters and only counters end in _total, and the columns are exactly
//     the metrics sql/parts/55_operator_metrics.sql returns;
//   * dashboard.json parses, uses a Prometheus datasource, has panels, and
//     every pg_durable_* series its expressions name is one queries.yaml
//     defines (pg_durable_<column>);
//   * rules.yml names only those series too.
// Usage: pgd_monitoring_check <source dir>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace {

int failures = 0;

void fail(const std::string &what) {
    std::cerr << "FAIL: " << what << "\n";
    ++failures;
}

std::string slurp(const std::string &path) {
    std::ifstream in(path);
    if (!in) {
        fail("cannot read " + path);
        return {};
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::set<std::string> series_named(const std::string &text) {
    static const std::regex series(R"(\bpg_durable_[a-z0-9_]+)");
    std::set<std::string> found;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), series); it != std::sregex_iterator(); ++it)
        found.insert(it->str());
    return found;
}

void collect_expressions(const nlohmann::json &node, std::string &out, int &prometheus_sources) {
    if (node.is_object()) {
        for (const auto &[key, value] : node.items()) {
            if ((key == "expr" || key == "definition") && value.is_string()) out += value.get<std::string>() + "\n";
            if (key == "query" && value.is_string()) out += value.get<std::string>() + "\n";
            if (key == "datasource" && value.is_object() && value.value("type", "") == "prometheus")
                ++prometheus_sources;
            collect_expressions(value, out, prometheus_sources);
        }
    } else if (node.is_array()) {
        for (const auto &item : node) collect_expressions(item, out, prometheus_sources);
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: pgd_monitoring_check <source dir>\n";
        return 2;
    }
    const std::string root = argv[1];
    const std::string dir = root + "/deploy/monitoring/";

    // queries.yaml: our own fixed layout (one namespace, `    - <column>:`
    // then `        usage: "<TYPE>"`).
    const std::string queries = slurp(dir + "queries.yaml");
    std::set<std::string> columns, defined;
    {
        static const std::regex ns(R"(^([a-z_]+):\s*$)");
        static const std::regex column(R"(^    - ([a-z0-9_]+):\s*$)");
        static const std::regex usage(R"re(^        usage: "([A-Z]+)")re");
        std::istringstream lines(queries);
        std::string line, namespace_name, current;
        int namespaces = 0;
        while (std::getline(lines, line)) {
            std::smatch m;
            if (std::regex_match(line, m, ns)) {
                namespace_name = m[1];
                ++namespaces;
            } else if (std::regex_match(line, m, column)) {
                current = m[1];
                if (!columns.insert(current).second) fail("queries.yaml: column " + current + " twice");
                defined.insert(namespace_name + "_" + current);
                if (queries.find(" AS " + current + ",") == std::string::npos &&
                    queries.find(" AS " + current + "\n") == std::string::npos)
                    fail("queries.yaml: the query selects no column " + current);
            } else if (std::regex_search(line, m, usage)) {
                const bool counter = m[1] == "COUNTER";
                const bool total = current.size() > 6 && current.compare(current.size() - 6, 6, "_total") == 0;
                if (counter != total) fail("queries.yaml: " + current + " is " + m[1].str());
                if (m[1] != "COUNTER" && m[1] != "GAUGE") fail("queries.yaml: usage " + m[1].str());
            }
        }
        if (namespaces != 1 || namespace_name != "pg_durable") fail("queries.yaml: expected one namespace pg_durable");
    }
    if (columns.empty()) fail("queries.yaml: no metrics");

    // The function's metrics: the ('<name>', <value>) rows of its VALUES list.
    const std::string sql = slurp(root + "/sql/parts/55_operator_metrics.sql");
    std::set<std::string> returned;
    {
        static const std::regex row(R"(\('([a-z0-9_]+)',)");
        const auto from = sql.find("LATERAL (VALUES");
        if (from == std::string::npos) fail("55_operator_metrics.sql: no VALUES list");
        const std::string list = from == std::string::npos ? std::string() : sql.substr(from);
        for (auto it = std::sregex_iterator(list.begin(), list.end(), row); it != std::sregex_iterator(); ++it)
            returned.insert((*it)[1]);
    }
    for (const auto &c : columns)
        if (!returned.count(c)) fail("queries.yaml column " + c + " is not a df_monitor.operator_metrics() metric");
    for (const auto &r : returned)
        if (!columns.count(r)) fail("df_monitor.operator_metrics() metric " + r + " is missing from queries.yaml");

    // dashboard.json
    const std::string dashboard_text = slurp(dir + "dashboard.json");
    nlohmann::json dashboard;
    try {
        dashboard = nlohmann::json::parse(dashboard_text);
    } catch (const nlohmann::json::exception &e) {
        fail(std::string("dashboard.json does not parse: ") + e.what());
    }
    if (!dashboard.is_object() || !dashboard.contains("panels") || !dashboard["panels"].is_array() ||
        dashboard["panels"].empty()) {
        fail("dashboard.json: no panels");
    } else {
        std::string expressions;
        int prometheus_sources = 0;
        collect_expressions(dashboard, expressions, prometheus_sources);
        if (prometheus_sources == 0) fail("dashboard.json: no Prometheus datasource");
        const auto used = series_named(expressions);
        if (used.empty()) fail("dashboard.json: no pg_durable series");
        for (const auto &s : used)
            if (!defined.count(s)) fail("dashboard.json uses " + s + ", which queries.yaml does not define");
        for (const auto &panel : dashboard["panels"])
            if (!panel.contains("targets") || panel["targets"].empty())
                fail("dashboard.json: panel without targets: " + panel.value("title", std::string("?")));
    }

    // rules.yml
    const auto in_rules = series_named(slurp(dir + "rules.yml"));
    if (in_rules.empty()) fail("rules.yml: no pg_durable series");
    for (const auto &s : in_rules)
        if (!defined.count(s)) fail("rules.yml uses " + s + ", which queries.yaml does not define");

    if (failures == 0)
        std::cout << "deploy/monitoring: " << columns.size() << " series, dashboard and rules consistent\n";
    return failures == 0 ? 0 : 1;
}
