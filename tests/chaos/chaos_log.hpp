// Shared pieces of the chaos harness: its options, a timestamped run log
// (stdout and a file), and the driver's own database connections.
#pragma once

#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>

#include <pqxx/pqxx>

#include "cluster.hpp"

namespace pgd::chaos {

struct Options {
    std::string mode = "quick";
    unsigned seed = 0;
    int workflows = 0;   // 0 = the mode's default
    int duration_s = 0;  // 0 = the mode's default
};
Options &options();

using Clock = std::chrono::steady_clock;

// Every line carries the seconds since the run started, so faults, driver
// actions and the verdict can be lined up afterwards.
class RunLog {
public:
    explicit RunLog(const std::string &path);
    double now_s() const;
    void line(const std::string &text);
    const std::string &path() const { return path_; }

private:
    std::string path_;
    Clock::time_point start_ = Clock::now();
    std::mutex mutex_;
    std::ofstream file_;
};

// The application_name of the harness's own sessions: the fault injector
// terminates daemon sessions and must tell them apart from these.
constexpr const char *kDriverApplication = "pgd_chaos";

// The fixture's connection string for role/db, tagged as the harness's.
std::string driver_conninfo(const test::TestCluster &cluster, const std::string &role = "",
                            const std::string &db = "postgres");
// First column of the first row (autocommit), nullopt for no row or NULL. Throws on any error.
std::optional<std::string> query_value(const test::TestCluster &cluster, const std::string &sql,
                                       const std::string &db = "postgres");
pqxx::result query_rows(const test::TestCluster &cluster, const std::string &sql, const std::string &db = "postgres");

}  // namespace pgd::chaos
