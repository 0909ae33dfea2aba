/*
 * resp.h -- the Redis protocol, server side: a request parser and reply
 * writers for RESP2 and RESP3. Pure code: no I/O, no logging.
 *
 * The parser follows hiredis's read.c and Redis's networking.c: bytes are
 * fed as they arrive, a request may be split anywhere, a buffer may hold
 * several pipelined requests, and st_resp_next() hands them out one at a
 * time. Two request forms, told apart by their first byte as Redis does:
 *
 *   multibulk  *<argc>\r\n then argc times $<len>\r\n<len bytes>\r\n
 *              (what every client library sends). *0 and *-1 (or any
 *              negative count) are empty requests, skipped.
 *   inline     one line ending in \n (a \r before it is dropped), split
 *              into arguments as Redis's sdssplitargs() splits it:
 *              blanks separate; "double quotes" take \n \r \t \b \a \\
 *              \" and \xHH escapes; 'single quotes' take \' only; a
 *              closing quote must be followed by a blank or the end of
 *              the line; a NUL byte ends the line. An empty line is
 *              skipped. (What `telnet` or `nc` users type: PING\r\n.)
 *
 * Numbers in headers are read as Redis's string2ll() reads them: an
 * optional '-', then digits without a leading zero (0 alone is fine),
 * nothing else. Limits, beyond which the request is refused:
 *
 *   ST_RESP_ARGS_MAX      arguments per request          1024
 *   ST_RESP_BULK_MAX      bytes per argument (bulk)      1 MiB
 *   ST_RESP_INLINE_MAX    bytes per inline line, and per
 *                         *N / $N header line            64 KiB
 *   ST_RESP_REQUEST_MAX   bytes per multibulk request    16 MiB
 *
 * Errors are sticky (like a redisReader's): after the first one,
 * st_resp_next(), st_resp_feed() and st_resp_space() return ST_EPARSE
 * until st_resp_reset(), and st_resp_error() holds the message, in
 * Redis's words, to be sent as "-ERR <message>" before closing the
 * connection:
 *
 *   Protocol error: invalid multibulk length    bad *N, or N > 1024
 *   Protocol error: invalid bulk length         bad $N, or N > 1 MiB
 *   Protocol error: expected '$', got 'c'       c is not '$'
 *   Protocol error: expected CRLF after bulk    bulk not followed by \r\n
 *   Protocol error: too big mbulk count string  no \r\n in 64 KiB after *
 *   Protocol error: too big bulk count string   no \r\n in 64 KiB after $
 *   Protocol error: too big inline request      no \n in 64 KiB, or a
 *                                               longer line
 *   Protocol error: unbalanced quotes in request   (inline)
 *   Protocol error: too many arguments in inline request   (over 1024)
 *   Protocol error: request too big             multibulk over 16 MiB
 *
 * (Redis itself does not check the CRLF after a bulk, and limits a
 * request only through client-query-buffer-limit.) Running out of memory
 * is sticky too: the calls return ST_ENOMEM and the message is "out of
 * memory".
 *
 * Memory: the parser owns one buffer that grows to hold the request being
 * received (16 KiB to start with; the whole of a bulk once its header
 * has arrived) and shrinks back once a large request has been handed out
 * and nothing is left after it. A request's arguments are parsed in
 * place: each st_resp_next() returns pointers into that buffer.
 *
 * The reply writers append replies to an st_resp_out_t, a byte buffer
 * that grows as needed and is drained from the front as the socket takes
 * it. Each buffer speaks the protocol version its connection chose with
 * HELLO (RESP2 until then): the writers of the RESP3 types (null, map,
 * set, verbatim string) fall back to their RESP2 forms, as Redis's
 * addReply*() functions do, so that a command handler writes one reply
 * for both.
 *
 * Thread: a parser or an output buffer is used by one thread at a time;
 * separate ones are independent.
 */
#ifndef ST_RESP_H
#define ST_RESP_H

#include <stddef.h>
#include <stdint.h>

#define ST_RESP_ARGS_MAX 1024
#define ST_RESP_BULK_MAX (1024 * 1024)
#define ST_RESP_INLINE_MAX (64 * 1024)
#define ST_RESP_REQUEST_MAX (16 * 1024 * 1024)

typedef struct st_resp_parser st_resp_parser_t;

/*
 * One request: argc >= 1 arguments, argv[i] of argvlen[i] bytes (any
 * bytes; each is followed by a NUL byte that its length does not count,
 * so an argument without NUL bytes reads as a C string). Everything is
 * borrowed from the parser until the next call of any st_resp_* function
 * on it (st_resp_feed(), st_resp_space(), st_resp_next(), ...).
 */
typedef struct st_resp_request {
	size_t argc;
	const char *const *argv;
	const size_t *argvlen;
} st_resp_request_t;

/* Returns 0 and an empty parser in *pp (release with
 * st_resp_parser_destroy()), or ST_ENOMEM. */
int st_resp_parser_new(st_resp_parser_t **pp);

/* Frees the parser and its buffer. NULL is allowed. */
void st_resp_parser_destroy(st_resp_parser_t *p);

/* Drops every buffered byte and the sticky error: the parser is as new
 * (its buffer is kept). */
void st_resp_reset(st_resp_parser_t *p);

/*
 * Appends len bytes (copied; borrowed for the call only) to the parser's
 * buffer. Parses nothing: call st_resp_next() until it returns 0.
 * Returns 0, ST_ENOMEM (nothing appended), or ST_EPARSE when the parser
 * holds an error (nothing appended).
 */
int st_resp_feed(st_resp_parser_t *p, const void *data, size_t len);

/*
 * Zero-copy feeding, for reading a socket straight into the parser's
 * buffer: st_resp_space() makes room for at least min bytes (and for the
 * whole of the bulk being received, when its header has arrived) and
 * returns where to write them in *space and how much room there is in
 * *avail (>= min). After writing n <= *avail bytes there, call
 * st_resp_wrote(p, n) before any other call. Returns 0, ST_ENOMEM or
 * ST_EPARSE, as st_resp_feed() does.
 */
int st_resp_space(st_resp_parser_t *p, size_t min, void **space,
		  size_t *avail);
void st_resp_wrote(st_resp_parser_t *p, size_t n);

/*
 * Parses the next request out of the bytes fed so far. Returns 1 and
 * *req (see st_resp_request_t for how long it lives), 0 when the
 * buffered bytes hold no complete request yet (feed more; nothing is
 * lost), or ST_EPARSE (ST_ENOMEM) with the sticky error
 * (st_resp_error()).
 */
int st_resp_next(st_resp_parser_t *p, st_resp_request_t *req);

/*
 * Reads s[0, n) as a number the way request headers are read (Redis's
 * string2ll(): an optional '-', then digits without a leading zero, "0"
 * alone being fine; nothing else, not even blanks). Returns 0 and *out,
 * or -1 when it is not such a number or is outside
 * [-LLONG_MAX, LLONG_MAX]. For the numbers of commands (HELLO's protocol
 * version, SELECT's index).
 */
int st_resp_parse_ll(const char *s, size_t n, long long *out);

/* The sticky error message ("Protocol error: ..."), or NULL when none.
 * Borrowed until st_resp_reset() or st_resp_parser_destroy(). */
const char *st_resp_error(const st_resp_parser_t *p);

/* Bytes buffered and not yet handed out in a request: a partial request,
 * or whole requests st_resp_next() has not been asked for yet. */
size_t st_resp_buffered(const st_resp_parser_t *p);

/*
 * An output buffer: the bytes of buf[head, len) wait to be sent. Start
 * with ST_RESP_OUT_INIT (or zero it), release with st_resp_out_free().
 * Only the functions below touch its fields.
 *
 * The writers append one reply (or an aggregate's header) in the
 * buffer's protocol version (st_resp_out_set_proto()) and return 0, or
 * ST_ENOMEM: then nothing is appended and the buffer's `failed`
 * flag is set and stays set until st_resp_out_free(), so that a handler
 * may write a whole reply and check once with st_resp_out_failed().
 * Strings are copied (borrowed for the call only).
 */
typedef struct st_resp_out {
	char *buf;
	size_t head, len, cap;
	int failed;
	int resp3;          /* replies in RESP3 */
} st_resp_out_t;

#define ST_RESP_OUT_INIT { NULL, 0, 0, 0, 0, 0 }

void st_resp_out_free(st_resp_out_t *o);

/* Bytes waiting to be sent, and where they start (borrowed until the
 * next call on o). */
size_t st_resp_out_pending(const st_resp_out_t *o);
const char *st_resp_out_data(const st_resp_out_t *o);

/* Drops the first n <= pending bytes (they were sent). When nothing is
 * left, a buffer grown over 1 MiB is freed, to give large replies'
 * memory back. */
void st_resp_out_consume(st_resp_out_t *o, size_t n);

/* Drops what was appended after pending was `mark` (a value of
 * st_resp_out_pending() taken since the last consume): to take back a
 * reply that could not be finished. */
void st_resp_out_truncate(st_resp_out_t *o, size_t mark);

int st_resp_out_failed(const st_resp_out_t *o);

/* Sets the protocol version of the replies written from now on: 2
 * (RESP2, the initial one) or 3 (RESP3). */
void st_resp_out_set_proto(st_resp_out_t *o, int proto);

/* The protocol version: 2 or 3. */
int st_resp_out_proto(const st_resp_out_t *o);

/* "+s\r\n": s must hold no \r or \n (status replies such as OK, PONG). */
int st_resp_out_simple(st_resp_out_t *o, const char *s);

/* "-msg\r\n" with every \r and \n of msg written as a space, as Redis
 * does. msg starts with its code ("ERR ...", "WRONGTYPE ..."). */
int st_resp_out_error(st_resp_out_t *o, const char *msg, size_t len);

/* The same, formatted (printf); the text is cut at 1023 bytes. */
int st_resp_out_errorf(st_resp_out_t *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ":n\r\n" */
int st_resp_out_int(st_resp_out_t *o, int64_t n);

/* "$len\r\n<bytes>\r\n" (any bytes) */
int st_resp_out_bulk(st_resp_out_t *o, const void *data, size_t len);

/* The missing value (a nil of HGET): "_\r\n" in RESP3, "$-1\r\n" in
 * RESP2. */
int st_resp_out_null(st_resp_out_t *o);

/* "*n\r\n", to be followed by n replies */
int st_resp_out_array(st_resp_out_t *o, size_t n);

/* A map of n pairs, to be followed by 2n replies (key, value, ...):
 * "%n\r\n" in RESP3, "*<2n>\r\n" (a flat array) in RESP2. */
int st_resp_out_map(st_resp_out_t *o, size_t n);

/* A set of n members, to be followed by n replies: "~n\r\n" in RESP3,
 * "*n\r\n" in RESP2. */
int st_resp_out_set(st_resp_out_t *o, size_t n);

/* A verbatim string of len bytes in format fmt (three characters: "txt"
 * for plain text, "mkd" for markdown): "=<len + 4>\r\n<fmt>:<bytes>\r\n"
 * in RESP3, a bulk string of the bytes in RESP2. */
int st_resp_out_verbatim(st_resp_out_t *o, const char *fmt,
			 const void *data, size_t len);

/* Appends len bytes as they are (a reply encoded beforehand). */
int st_resp_out_raw(st_resp_out_t *o, const void *data, size_t len);

#endif
