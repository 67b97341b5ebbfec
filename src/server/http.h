// HTTP/1.1 request parsing (incremental, bounded) and response framing, on plain byte buffers.
// Not sockets and not routing: server.cpp owns the connections; this file never allocates more
// than the limits allow and never trusts a length it has not checked.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::server {

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;  // request line + headers; beyond: 431
  size_t max_headers = 100;
  size_t max_body_bytes = 4u << 20;     // Content-Length beyond: 413 before reading the body
};

struct HttpRequest {
  std::string method, target, path, query;  // path: target before '?'
  int version_minor = 1;                    // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  std::string body;
  bool keep_alive = true;        // 1.1 unless "Connection: close"; 1.0 only with "keep-alive"
  bool expect_continue = false;  // "Expect: 100-continue"

  // First value of a header (name lower-case), or nullptr.
  const std::string* header(std::string_view name) const;
};

// Incremental parser for one request at the front of a connection's input buffer. Call feed()
// whenever bytes arrive; it scans each byte of the header section once (a slow client sending a
// byte at a time costs linear, not quadratic, work) and never reads past the declared body.
class RequestParser {
 public:
  enum class Status { NeedMore, HeadersDone, Complete, Error };
  explicit RequestParser(HttpLimits lim = {}) : lim_(lim) {}

  // `buf` holds the connection's unread bytes from the start of this request. HeadersDone is
  // returned once when the head is parsed and the body is still incomplete (the caller may send
  // "100 Continue"); Complete when the whole request is in `buf` (see consumed()); Error: see
  // error_status()/error_message(). After Complete or Error, reset() before the next request.
  Status feed(std::string_view buf);
  void reset();

  HttpRequest& request() { return req_; }
  size_t consumed() const { return head_len_ + body_len_; }  // valid after Complete
  bool head_parsed() const { return head_len_ > 0; }
  int error_status() const { return err_status_; }
  const std::string& error_message() const { return err_msg_; }

 private:
  Status fail(int status, std::string msg);
  Status parse_head(std::string_view head);

  HttpLimits lim_;
  HttpRequest req_;
  size_t scan_ = 0;      // header bytes already searched for the blank line
  size_t head_len_ = 0;  // bytes of request line + headers + blank line (0: not yet parsed)
  size_t body_len_ = 0;
  bool reported_head_ = false;
  int err_status_ = 0;
  std::string err_msg_;
};

const char* http_reason(int status);

// A complete response with Content-Length. `extra` are full header lines without CRLF.
std::string http_response(int status, std::string_view content_type, std::string_view body, bool keep_alive,
                          const std::vector<std::string>& extra = {});
// The head of a streamed response: chunked on HTTP/1.1, close-delimited on HTTP/1.0.
std::string http_stream_head(int status, std::string_view content_type, bool chunked, bool keep_alive);
// One chunk of a chunked body (empty data is skipped: a zero-size chunk ends the body).
std::string http_chunk(std::string_view data);
inline constexpr std::string_view kHttpLastChunk = "0\r\n\r\n";

}  // namespace strata::server
