// Parsing df._run_step outcomes and connection failures (daemon/executor.hpp).
#include "catch_compat.hpp"

#include "daemon/executor.hpp"
#include "daemon/http_policy.hpp"

using pgd::daemon::connect_failure_text;
using pgd::daemon::parse_run_step_outcome;
using pgd::daemon::StepResult;

TEST_CASE("df._run_step outcomes keep the result text exactly", "[daemon][executor]") {
    const auto done = parse_run_step_outcome(
        "{\"outcome\":\"completed\",\"result\":{\"rows\":[{\"b\":1.50,\"a\":2}],\"row_count\":1}}");
    CHECK(done.kind == StepResult::Kind::completed);
    CHECK(done.result == "{\"rows\":[{\"b\":1.50,\"a\":2}],\"row_count\":1}");

    const auto failed = parse_run_step_outcome("{\"outcome\":\"failed\",\"error\":\"SQL execution failed: division by zero\"}");
    CHECK(failed.kind == StepResult::Kind::failed);
    CHECK(failed.error == "SQL execution failed: division by zero");

    const auto dup = parse_run_step_outcome(
        "{\"outcome\":\"duplicate\",\"status\":\"completed\",\"result\":{\"rows\":[],\"row_count\":0},\"error\":null}");
    CHECK(dup.kind == StepResult::Kind::duplicate);
    CHECK(dup.status == "completed");
    CHECK(dup.result == "{\"rows\":[],\"row_count\":0}");

    CHECK(parse_run_step_outcome("{\"outcome\":\"instance_not_running\",\"status\":\"cancelled\"}").kind ==
          StepResult::Kind::instance_not_running);
}

TEST_CASE("a malformed df._run_step outcome fails that step, never the daemon", "[daemon][executor]") {
    // Each of these once crashed or confused the daemon (e.g. a completed
    // outcome without a result); now each is a failed, unrecorded step.
    for (const char *outcome : {
             "not json", "", "[]", "{}", "{\"outcome\":1}", "{\"outcome\":\"completed\"}",
             "{\"outcome\":\"completed\",\"result\":null}",
             "{\"outcome\":\"completed\",\"result\":{\"rows\":{}}}",
             "{\"outcome\":\"completed\",\"result\":{\"rows\":[]}}",
             "{\"outcome\":\"completed\",\"result\":\"x\"}", "{\"outcome\":\"failed\"}",
             "{\"outcome\":\"failed\",\"error\":7}", "{\"outcome\":\"cancelled\",\"error\":null}",
             "{\"outcome\":\"duplicate\"}", "{\"outcome\":\"duplicate\",\"status\":\"completed\"}",
             "{\"outcome\":\"duplicate\",\"status\":\"running\"}",
             "{\"outcome\":\"duplicate\",\"status\":\"failed\",\"error\":[]}",
             "{\"outcome\":\"instance_not_running\",\"status\":3}", "{\"outcome\":\"forged\"}"}) {
        INFO(outcome);
        const auto result = parse_run_step_outcome(outcome);
        CHECK(result.kind == StepResult::Kind::failed);
        CHECK_FALSE(result.recorded);
        CHECK(result.error.rfind("SQL execution failed: unexpected df._run_step outcome: ", 0) == 0);
    }
    const auto dup_failed = parse_run_step_outcome(
        "{\"outcome\":\"duplicate\",\"status\":\"failed\",\"result\":null,\"error\":\"SQL execution failed: x\"}");
    CHECK(dup_failed.kind == StepResult::Kind::duplicate);
    CHECK(dup_failed.error == "SQL execution failed: x");
    CHECK(parse_run_step_outcome("{\"outcome\":\"instance_not_running\",\"status\":null}").kind ==
          StepResult::Kind::instance_not_running);
}

TEST_CASE("a long malformed outcome is cut at a character boundary", "[daemon][executor]") {
    // The error is stored in df; half a UTF-8 character would make PostgreSQL
    // refuse the record (found by fuzz_run_step_outcome; corpus utf8-cut-*).
    const std::string outcome = std::string(199, 'x') + "\xc3\xa9" + std::string(50, 'y');
    const auto result = parse_run_step_outcome(outcome);
    CHECK(result.kind == StepResult::Kind::failed);
    CHECK(pgd::daemon::http::utf8_without_nul(result.error));
    CHECK(result.error == "SQL execution failed: unexpected df._run_step outcome: " + std::string(199, 'x') + "...");
    // A cut that falls between characters keeps all 200 bytes.
    const auto ascii = parse_run_step_outcome(std::string(300, 'z'));
    CHECK(ascii.error == "SQL execution failed: unexpected df._run_step outcome: " + std::string(200, 'z') + "...");
}

TEST_CASE("connection failures carry the server's message", "[daemon][executor]") {
    const std::string socket_prefix = "connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: ";
    CHECK(connect_failure_text("alice", "app", socket_prefix + "FATAL:  role \"alice\" is not permitted to log in\n") ==
          "Failed to connect as 'alice': role \"alice\" is not permitted to log in");
    CHECK(connect_failure_text("alice", "gone", socket_prefix + "FATAL:  database \"gone\" does not exist\n") ==
          "SQL execution failed: database \"gone\" does not exist");
    CHECK(connect_failure_text("alice", "app", "could not connect") == "Failed to connect as 'alice': could not connect");
}
