#include "daemon/http_policy.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace pgd::daemon::http {

namespace {

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string trim(const std::string &text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

bool ends_with(const std::string &text, const std::string &suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool starts_with(const std::string &text, const std::string &prefix) { return text.rfind(prefix, 0) == 0; }

// Length of the valid UTF-8 sequence starting at `i` (0 when invalid or NUL).
std::size_t utf8_sequence(const std::string &bytes, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    const unsigned char c = byte(i);
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    std::size_t n;
    unsigned min;
    unsigned code;
    if ((c & 0xe0) == 0xc0) {
        n = 2, min = 0x80, code = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, min = 0x800, code = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, code = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > bytes.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
        code = (code << 6) | (byte(i + k) & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
    return n;
}

// Up to `limit` bytes of `bytes` as valid UTF-8 text: a sequence cut by the
// limit is dropped, invalid bytes and NUL become '?'.
std::string text_preview(const std::string &bytes, std::size_t limit) {
    std::string out;
    std::size_t i = 0;
    while (i < bytes.size() && i < limit) {
        const std::size_t n = utf8_sequence(bytes, i);
        if (n == 0) {
            out += '?';
            ++i;
            continue;
        }
        if (i + n > limit) break;
        out.append(bytes, i, n);
        i += n;
    }
    return out;
}

}  // namespace

std::string url_scheme(const std::string &url) {
    const auto separator = url.find("://");
    return separator == std::string::npos ? std::string() : lower(url.substr(0, separator));
}

std::optional<Url> parse_url(const std::string &url) {
    const auto separator = url.find("://");
    if (separator == std::string::npos) return std::nullopt;
    Url out;
    out.scheme = lower(url.substr(0, separator));
    const std::string rest = url.substr(separator + 3);
    const auto authority_end = rest.find_first_of("/?#");
    std::string authority = rest.substr(0, authority_end);
    std::string target = authority_end == std::string::npos ? std::string() : rest.substr(authority_end);
    if (const auto fragment = target.find('#'); fragment != std::string::npos) target.erase(fragment);
    if (target.empty() || target[0] != '/') target = "/" + target;
    out.target = target;
    if (const auto at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);
    out.host_header = authority;
    std::string host;
    std::string port;
    if (!authority.empty() && authority[0] == '[') {
        const auto close = authority.find(']');
        if (close == std::string::npos) return std::nullopt;
        host = authority.substr(1, close - 1);
        const std::string after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return std::nullopt;
            port = after.substr(1);
        }
    } else {
        const auto colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string::npos) port = authority.substr(colon + 1);
    }
    if (!host.empty() && host.back() == '.') host.pop_back();
    out.host = lower(host);
    if (out.host.empty()) return std::nullopt;
    if (port.empty()) {
        if (const auto colon = out.host_header.rfind(':');
            colon != std::string::npos && colon + 1 == out.host_header.size())
            out.host_header.pop_back();  // "host:" means the default port
        port = out.scheme == "https" ? "443" : "80";
    }
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }))
        return std::nullopt;
    const int number = std::stoi(port);
    if (number < 1 || number > 65535) return std::nullopt;
    out.port = std::to_string(number);
    return out;
}

std::string url_host(const std::string &url) {
    const auto parsed = parse_url(url);
    return parsed ? parsed->host : std::string();
}

bool host_allowed(const std::string &host, const std::string &allowed_hosts) {
    const std::string wanted = lower(host);
    std::size_t start = 0;
    while (start <= allowed_hosts.size()) {
        auto comma = allowed_hosts.find(',', start);
        if (comma == std::string::npos) comma = allowed_hosts.size();
        const std::string item = lower(trim(allowed_hosts.substr(start, comma - start)));
        start = comma + 1;
        if (item.empty()) continue;
        if (item == "*") return true;
        if (starts_with(item, "*.")) {
            const std::string suffix = item.substr(1);  // ".example.org"
            if (wanted.size() > suffix.size() && ends_with(wanted, suffix)) return true;
            continue;
        }
        if (item == wanted) return true;
    }
    return false;
}

bool restricted_address(const boost::asio::ip::address &address) {
    if (address.is_v6()) {
        const auto v6 = address.to_v6();
        if (v6.is_v4_mapped()) return restricted_address(v6.to_v4());
        const auto bytes = v6.to_bytes();
        if (v6.is_unspecified() || v6.is_loopback()) return true;
        if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80) return true;  // fe80::/10
        if ((bytes[0] & 0xfe) == 0xfc) return true;                       // fc00::/7
        return false;
    }
    const auto b = address.to_v4().to_bytes();
    if (b[0] == 0 || b[0] == 10 || b[0] == 127) return true;  // 0/8, 10/8, 127/8
    if (b[0] == 100 && (b[1] & 0xc0) == 64) return true;      // 100.64/10
    if (b[0] == 169 && b[1] == 254) return true;              // 169.254/16
    if (b[0] == 172 && (b[1] & 0xf0) == 16) return true;      // 172.16/12
    if (b[0] == 192 && b[1] == 168) return true;              // 192.168/16
    return false;
}

bool textual_content_type(const std::string &content_type) {
    std::string type = lower(trim(content_type.substr(0, content_type.find(';'))));
    if (starts_with(type, "text/")) return true;
    if (ends_with(type, "+json") || ends_with(type, "+xml") || ends_with(type, "+yaml")) return true;
    for (const char *known : {"application/json", "application/xml", "application/javascript",
                              "application/ecmascript", "application/x-www-form-urlencoded", "application/graphql",
                              "application/yaml", "application/x-yaml"})
        if (type == known) return true;
    return false;
}

bool utf8_without_nul(const std::string &bytes) {
    for (std::size_t i = 0; i < bytes.size();) {
        const std::size_t n = utf8_sequence(bytes, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string base64(const std::string &bytes) {
    static const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                           (static_cast<unsigned char>(bytes[i + 1]) << 8) | static_cast<unsigned char>(bytes[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (i + 1 == bytes.size()) {
        const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == bytes.size()) {
        const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

bool valid_json(const std::string &text) { return nlohmann::json::accept(text); }

std::string envelope(const Response &response, long long duration_ms, int attempts) {
    nlohmann::ordered_json headers = nlohmann::ordered_json::object();
    std::string content_type;
    for (const auto &[name, value] : response.headers) {
        const std::string key = lower(name);
        if (key == "content-type" && content_type.empty()) content_type = value;
        if (headers.contains(key))
            headers[key] = headers[key].get<std::string>() + ", " + value;
        else
            headers[key] = value;
    }
    // Invalid UTF-8 in a textual body is replaced (U+FFFD) when dumped.
    const bool text = textual_content_type(content_type) || utf8_without_nul(response.body);
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    out["status"] = response.status;
    out["body"] = text ? response.body : base64(response.body);
    out["encoding"] = text ? "text" : "base64";
    out["headers"] = std::move(headers);
    out["ok"] = response.status >= 200 && response.status < 300;
    out["duration_ms"] = duration_ms;
    out["attempts"] = attempts;
    return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string disabled_error() {
    return "df.http() is disabled. Set pg_durable.http_enabled = on to enable outbound HTTP requests.";
}

std::string privilege_error(const std::string &role) {
    return "Blocked: role '" + role +
           "' does not have EXECUTE privilege on df.http(). Grant EXECUTE ON FUNCTION "
           "df.http(text,text,text,jsonb,integer) TO " +
           role + " to allow HTTP requests.";
}

std::string scheme_error(const std::string &scheme) {
    return "Blocked: unsupported URL scheme '" + scheme + "'. Only http and https are allowed.";
}

std::string allow_list_error(const std::string &host) {
    return "Blocked: '" + host + "' is not in pg_durable.http_allowed_hosts.";
}

std::string restricted_error(const std::string &host) {
    return "Blocked: the resolved IP address for '" + host +
           "' is in a restricted range. df.http() cannot access private or internal network addresses.";
}

std::string status_error(const std::string &method, const std::string &url, int status, const std::string &body) {
    constexpr std::size_t kPreview = 512;
    std::string preview = text_preview(body, kPreview);
    if (body.size() > kPreview) preview += "... [truncated, " + std::to_string(body.size()) + " bytes total]";
    return "HTTP " + method + " " + url + " returned " + std::to_string(status) + ": " + preview;
}

std::string timeout_error(long long timeout_seconds, const std::string &url) {
    return "HTTP timeout after " + std::to_string(timeout_seconds) + "s: " + url;
}

std::string connection_error(const std::string &url, const std::string &error) {
    return "HTTP connection failed: " + url + " - " + error;
}

std::string request_error(const std::string &url, const std::string &error) {
    return "HTTP request failed: " + url + " - " + error;
}

std::string too_large_error(const std::string &url, long long max_bytes) {
    return "HTTP response from " + url + " exceeds pg_durable.http_max_response_bytes (" + std::to_string(max_bytes) +
           " bytes)";
}

std::chrono::milliseconds retry_delay(int attempt) {
    const int shift = std::clamp(attempt - 1, 0, 20);
    return std::chrono::milliseconds(1000LL << shift);
}

bool retryable_status(int status) { return status >= 500 && status <= 599; }

std::string idempotency_key(const std::string &instance_id, const std::string &node_id, long long execution) {
    return instance_id + "-" + node_id + "-" + std::to_string(execution);
}

std::string user_agent() { return std::string("pg_durable/") + PGD_VERSION; }

}  // namespace pgd::daemon::http
