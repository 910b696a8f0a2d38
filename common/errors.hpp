// Errors that common/ code raises for users. They carry a real SQLSTATE so the
// extension can report them in PostgreSQL's style and the daemon can store
// them verbatim as node errors.
#pragma once

#include <stdexcept>
#include <string>

namespace durable {

// Five-character SQLSTATE codes used by common/ (PostgreSQL's values).
namespace sqlstate {
inline constexpr const char *kInvalidParameterValue = "22023";
inline constexpr const char *kDataException = "22000";
inline constexpr const char *kInvalidTextRepresentation = "22P02";
inline constexpr const char *kProgramLimitExceeded = "54000";
inline constexpr const char *kFeatureNotSupported = "0A000";
inline constexpr const char *kInsufficientPrivilege = "42501";
inline constexpr const char *kObjectNotInPrerequisiteState = "55000";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kRaiseException = "P0001";
}  // namespace sqlstate

// A user-facing error: message text exactly as SPEC.md gives it, optional
// detail and hint, and the SQLSTATE to report it with.
class UserError : public std::runtime_error {
public:
    explicit UserError(const std::string &message,
                       const char *sqlstate = sqlstate::kInvalidParameterValue,
                       std::string detail = {}, std::string hint = {})
        : std::runtime_error(message), sqlstate_(sqlstate),
          detail_(std::move(detail)), hint_(std::move(hint)) {}

    const char *sqlstate() const noexcept { return sqlstate_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

private:
    const char *sqlstate_;
    std::string detail_;
    std::string hint_;
};

}  // namespace durable
