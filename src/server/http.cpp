// HTTP/1.1 request parser and response framing (RFC 9112 subset: Content-Length bodies only).
// Not lenient where leniency enables request smuggling: Transfer-Encoding, obs-fold, duplicate
// conflicting Content-Length and control characters are refused rather than guessed at.
#include "server/http.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

namespace strata::server {

namespace {

bool is_tchar(unsigned char c) {
  // RFC 9110 token characters.
  return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_token(std::string_view list, std::string_view tok) {
  // Comma-separated header list, case-insensitive ("keep-alive, Upgrade").
  size_t i = 0;
  while (i <= list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    if (lower(trim_ows(list.substr(i, j - i))) == tok) return true;
    i = j + 1;
  }
  return false;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

void RequestParser::reset() {
  req_ = HttpRequest{};
  scan_ = head_len_ = body_len_ = 0;
  reported_head_ = false;
  err_status_ = 0;
  err_msg_.clear();
}

RequestParser::Status RequestParser::fail(int status, std::string msg) {
  err_status_ = status;
  err_msg_ = std::move(msg);
  return Status::Error;
}

RequestParser::Status RequestParser::feed(std::string_view buf) {
  if (err_status_) return Status::Error;
  if (head_len_ == 0) {
    // Leading blank lines before a request are allowed (RFC 9112 2.2) and skipped.
    size_t start = 0;
    while (start < buf.size() && (buf[start] == '\r' || buf[start] == '\n')) start++;
    if (start > lim_.max_header_bytes) return fail(400, "too many blank lines before the request");
    // Find the blank line ending the head, resuming where the last call stopped.
    size_t from = std::max(scan_, start);
    size_t end = std::string_view::npos, body_at = 0;
    for (size_t i = from; i < buf.size(); i++) {
      if (buf[i] != '\n') continue;
      if (i + 1 < buf.size() && buf[i + 1] == '\n') { end = i + 1; body_at = i + 2; break; }
      if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') { end = i + 1; body_at = i + 3; break; }
    }
    if (end == std::string_view::npos) {
      // Keep the last two bytes for the next search: the blank line may straddle calls.
      scan_ = buf.size() >= 2 ? buf.size() - 2 : 0;
      if (buf.size() - start > lim_.max_header_bytes) return fail(431, "request header section too large");
      return Status::NeedMore;
    }
    if (body_at - start > lim_.max_header_bytes) return fail(431, "request header section too large");
    Status s = parse_head(buf.substr(start, end - start));
    if (s == Status::Error) return s;
    head_len_ = body_at;
  }
  if (buf.size() - head_len_ < body_len_) {
    if (!reported_head_) {
      reported_head_ = true;
      return Status::HeadersDone;
    }
    return Status::NeedMore;
  }
  req_.body.assign(buf.substr(head_len_, body_len_));
  return Status::Complete;
}

RequestParser::Status RequestParser::parse_head(std::string_view head) {
  // Split into lines (CRLF or bare LF).
  std::vector<std::string_view> lines;
  size_t i = 0;
  while (i < head.size()) {
    size_t j = head.find('\n', i);
    if (j == std::string_view::npos) j = head.size();
    std::string_view line = head.substr(i, j - i);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    i = j + 1;
  }
  if (lines.empty()) return fail(400, "empty request");
  // Request line: METHOD SP request-target SP HTTP-version, single spaces.
  std::string_view rl = lines[0];
  size_t sp1 = rl.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line");
  std::string_view method = rl.substr(0, sp1), target = rl.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = rl.substr(sp2 + 1);
  if (method.empty() || method.size() > 16) return fail(400, "malformed request method");
  for (unsigned char c : method)
    if (!is_tchar(c)) return fail(400, "malformed request method");
  if (target.empty() || target[0] != '/') return fail(400, "request target must be an absolute path");
  for (unsigned char c : target)
    if (c <= 0x20 || c >= 0x7f) return fail(400, "request target has invalid characters");
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/") return fail(400, "malformed HTTP version");
  if (version.substr(5) == "1.1") req_.version_minor = 1;
  else if (version.substr(5) == "1.0") req_.version_minor = 0;
  else return fail(505, "HTTP version not supported");
  req_.method.assign(method);
  req_.target.assign(target);
  size_t q = target.find('?');
  req_.path.assign(target.substr(0, q));
  if (q != std::string_view::npos) req_.query.assign(target.substr(q + 1));

  bool have_len = false;
  for (size_t k = 1; k < lines.size(); k++) {
    std::string_view l = lines[k];
    if (l.empty()) continue;
    if (l[0] == ' ' || l[0] == '\t') return fail(400, "obsolete header line folding");
    size_t colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header line");
    std::string_view name = l.substr(0, colon), value = trim_ows(l.substr(colon + 1));
    for (unsigned char c : name)
      if (!is_tchar(c)) return fail(400, "malformed header name");
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return fail(400, "header value has control characters");
    if (req_.headers.size() >= lim_.max_headers) return fail(431, "too many header fields");
    std::string lname = lower(name);
    if (lname == "content-length") {
      if (value.empty() || value.size() > 18) return fail(400, "invalid Content-Length");
      size_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return fail(400, "invalid Content-Length");
        n = n * 10 + size_t(c - '0');
      }
      if (have_len && n != body_len_) return fail(400, "conflicting Content-Length headers");
      have_len = true;
      body_len_ = n;
    } else if (lname == "transfer-encoding") {
      // Chunked request bodies are rare from API clients and a classic smuggling vector.
      return fail(501, "Transfer-Encoding request bodies are not supported; send Content-Length");
    }
    req_.headers.emplace_back(std::move(lname), std::string(value));
  }
  const std::string* conn = req_.header("connection");
  req_.keep_alive = req_.version_minor == 1 ? !(conn && has_token(*conn, "close"))
                                            : (conn && has_token(*conn, "keep-alive"));
  if (const std::string* e = req_.header("expect")) {
    if (lower(*e) != "100-continue") return fail(417, "unsupported Expect header");
    req_.expect_continue = req_.version_minor == 1;
  }
  if (body_len_ > lim_.max_body_bytes)
    return fail(413, "request body of " + std::to_string(body_len_) + " bytes exceeds the limit of " +
                         std::to_string(lim_.max_body_bytes) + " bytes");
  return Status::NeedMore;
}

const char* http_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string http_response(int status, std::string_view content_type, std::string_view body, bool keep_alive,
                          const std::vector<std::string>& extra) {
  std::string r;
  r.reserve(160 + body.size());
  r += "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) + "\r\n";
  r += "Content-Type: ";
  r += content_type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& h : extra) r += h + "\r\n";
  r += "\r\n";
  r += body;
  return r;
}

std::string http_stream_head(int status, std::string_view content_type, bool chunked, bool keep_alive) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) + "\r\n";
  r += "Content-Type: ";
  r += content_type;
  r += "\r\nCache-Control: no-cache\r\n";
  if (chunked) r += "Transfer-Encoding: chunked\r\n";
  r += keep_alive && chunked ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  r += "\r\n";
  return r;
}

std::string http_chunk(std::string_view data) {
  if (data.empty()) return {};
  char len[32];
  int n = std::snprintf(len, sizeof len, "%zx\r\n", data.size());
  std::string r(len, size_t(n));
  r += data;
  r += "\r\n";
  return r;
}

}  // namespace strata::server
