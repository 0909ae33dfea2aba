/*
 * server.h -- `strata serve`: feature lookup over the Redis protocol.
 *
 * Answers Redis clients (redis-cli, hiredis, redis-py, Jedis...) from the
 * newest feature vectors that `strata run` keeps in LMDB (state.dir,
 * database "entities": entity -> window state and vecrec record, see
 * state.h and vecrec.h). The Redis
 * key of an entity is `<prefix>:<entity>`, as in the online store
 * (online.h), and its hash holds the same fields: _event_time, _seq, the
 * features, _stale_join, _score. A key that does not start with
 * `<prefix>:` answers as a missing key does.
 *
 * Protocol: RESP2 until a connection sends HELLO 3, RESP3 from then on
 * (HELLO 2 goes back), as in Redis 7. In RESP3, HGETALL answers a map,
 * a missing value is a null (_), INFO is a verbatim string (txt), and
 * COMMAND, COMMAND INFO and COMMAND DOCS use maps and sets where Redis 7
 * does; every other reply is the same in both.
 *
 * Commands (Redis's replies and error texts):
 *
 *   PING [message]           +PONG, or the message as a bulk string
 *   ECHO message             the message
 *   QUIT                     +OK, then the connection is closed
 *   HELLO [protover [AUTH username password] [SETNAME clientname]]
 *                            protover 2 or 3 switches the connection's
 *                            protocol (other numbers: "NOPROTO
 *                            unsupported protocol version"); answers a
 *                            map: server "strata", version, proto, id,
 *                            mode "standalone", role "master", modules
 *                            (empty). AUTH as AUTH below; SETNAME as
 *                            CLIENT SETNAME.
 *   AUTH [username] password there are no passwords, as in a Redis
 *                            without requirepass: user "default" with any
 *                            password is +OK, another user is
 *                            "WRONGPASS ...", the one-argument form is
 *                            "ERR AUTH <password> called without any
 *                            password configured for the default user..."
 *   CLIENT ID                the connection's id (1, 2, ... in order of
 *                            connection)
 *   CLIENT SETNAME name      +OK; names the connection ('!' to '~' only;
 *                            empty: no name)
 *   CLIENT GETNAME           the name, or nil
 *   CLIENT SETINFO LIB-NAME|LIB-VER value
 *                            +OK (what redis-py sends; not kept)
 *   CLIENT HELP              what CLIENT takes
 *   SELECT index             +OK for 0, the only database; "ERR DB index
 *                            is out of range" for any other
 *   COMMAND                  every command's description (Redis 7 form)
 *   COMMAND COUNT            :18
 *   COMMAND INFO name...     the named commands' descriptions (nil for
 *                            an unknown one)
 *   COMMAND DOCS [name...]   name -> summary, since, group, complexity,
 *                            arguments (what redis-cli asks for hints)
 *   HGETALL key              field, value, ... in stored order (a map
 *                            in RESP3); empty when missing
 *   HGET key field           the value, or nil
 *   HMGET key field...       one value or nil per field
 *   HEXISTS key field        :1 or :0
 *   HLEN key                 number of fields, :0 when missing
 *   EXISTS key...            number of keys that exist (a key named
 *                            twice counts twice, as in Redis)
 *   TYPE key                 +hash or +none
 *   SCORE key                the model's score of the stored vector, as
 *                            a bulk string ("%.9g" of the float, as the
 *                            pipeline writes _score), or nil when the key
 *                            is missing. Rows are built with
 *                            st_scorer_row_from_fields(): a feature the
 *                            vector lacks, or whose value is not a
 *                            number, is NaN. Error "ERR SCORE needs a
 *                            model: scorer.model is not set" without one.
 *   RECOMMEND key [COUNT n]  the catalogue's items ranked for the key's
 *                            entity by recommend.model (recommend.h),
 *                            best first, at most n (default 10): item,
 *                            score, item, score... as bulk strings
 *                            ("%.9g"), as ZRANGE WITHSCORES answers; in
 *                            RESP3 an array of [item, double] pairs. An
 *                            empty array for a key outside the prefix or
 *                            an entity with neither a vector nor a row in
 *                            recommend.user.table (an entity with only the
 *                            row is ranked, its vector's features NaN).
 *                            Errors: "ERR RECOMMEND needs a model:
 *                            recommend.model is not set", "ERR syntax
 *                            error", "ERR value is out of range, must be
 *                            positive", "ERR RECOMMEND: ..." (recommend.h).
 *   COMMAND HELP             what COMMAND takes
 *   INFO [section]           every section whatever asked:
 *                            strata_version, process_id, tcp_port,
 *                            uptime_in_seconds, connected_clients,
 *                            maxclients, total_connections_received,
 *                            total_commands_processed,
 *                            rejected_connections, total_error_replies
 *                            (a verbatim string in RESP3)
 *
 * Command names are case-insensitive. Errors: "ERR unknown command 'x',
 * with args beginning with: 'a' ", "ERR wrong number of arguments for
 * 'hget' command" ('client|id' for a subcommand), "ERR unknown
 * subcommand 'x'. Try COMMAND HELP." (CLIENT HELP), and
 * "ERR corrupt vector record for key '...'" for a record that does not
 * decode (the connection stays open).
 *
 * Reads: the state is opened read-only (ST_STATE_READONLY): `strata run`
 * may be writing it, as LMDB allows. Each pass of the event loop that
 * answers lookups uses one read transaction, renewed at the start of the
 * next such pass, so answers follow `strata run`'s commits (a pass lasts
 * microseconds to milliseconds) and no old snapshot is kept while idle.
 * Values are borrowed from LMDB while the reply is built (copied into
 * the client's output buffer).
 *
 * Connections: one thread, epoll, non-blocking sockets, TCP_NODELAY.
 * Beyond max_clients, a new connection gets "-ERR max number of clients
 * reached" and is closed. Replies are buffered per client and sent when
 * the socket takes them; a client whose unsent output exceeds max_output
 * bytes is not read (nor are its buffered requests run) until the output
 * drains below that. A protocol error is answered "-ERR Protocol error:
 * ..." (resp.h) and the connection closed once the reply is sent; a
 * client gone mid-request is dropped. Bad input never stops the server.
 *
 * Metrics (on their own HTTP endpoint, http.h, when metrics_listen is
 * set; their own registry): strata_resp_commands_total{command},
 * strata_resp_command_seconds{command} (histogram,
 * st_metrics_latency_buckets), strata_resp_connections (gauge),
 * strata_resp_errors_total (error replies of every kind, protocol errors
 * included); with RECOMMEND, strata_recommend_items (gauge),
 * strata_recommend_builds_total and strata_recommend_build_seconds
 * (gauge: the last build of the items' columns).
 *
 * Logging: what goes wrong with a connection (accept failing, no memory
 * for a reply) goes to st_log(), facility "serve"; client protocol
 * errors at debug level. Start-up errors are returned, not logged.
 *
 * Errors: ST_EINVAL (bad configuration: errstr names the setting),
 * ST_ENOMEM, ST_ENET (cannot listen on serve.listen or
 * serve.metrics.listen), ST_ENOENT / ST_ESTATE
 * (state.dir missing or not a state of this strata version), ST_EMODEL
 * (scorer.model or recommend.model cannot be loaded or has no
 * strata.features names; recommend.* settings as recommend.h says).
 *
 * Thread: st_server_new(), st_server_run() and st_server_destroy() may
 * run on different threads but one at a time; st_server_run() serves on
 * the calling thread. The process should ignore SIGPIPE; the server
 * itself sends with MSG_NOSIGNAL.
 */
#ifndef ST_SERVER_H
#define ST_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "recommend.h"

/* The settings of `strata serve` (config keys in brackets). Strings are
 * borrowed for st_server_new() only. */
typedef struct st_server_conf {
	const char *listen;         /* [serve.listen] "host:port", ":port",
				     * "[ipv6]:port"; port 0: any free one */
	const char *state_dir;      /* [state.dir] */
	const char *prefix;         /* [redis.prefix] non-empty */
	const char *model;          /* [scorer.model] NULL or "": no SCORE */
	const char *metrics_listen; /* [serve.metrics.listen] NULL or "":
				     * no metrics endpoint */
	const st_recommend_conf_t *recommend;
				    /* [recommend.*] NULL, or model NULL or
				     * "": no RECOMMEND */
	int max_clients;            /* [serve.max.clients] >= 1 */
	int64_t max_output;         /* [serve.client.output.max] bytes, > 0 */
} st_server_conf_t;

typedef struct st_server st_server_t;

/*
 * Checks conf, opens the state read-only, loads the model (when set),
 * binds the listening socket and starts the metrics endpoint. Returns 0
 * and *sp (serve with st_server_run(), release with st_server_destroy()),
 * or an error (see above) with errstr. Raises the soft limit of open
 * files to fit max_clients when it is lower (ST_EINVAL when it cannot).
 */
int st_server_new(st_server_t **sp, const st_server_conf_t *conf,
		  char *errstr, size_t errstr_size);

/* The port the server listens on (the one picked when port 0 was
 * asked), and that of the metrics endpoint (0 when disabled). */
int st_server_port(const st_server_t *s);
int st_server_metrics_port(const st_server_t *s);

/* The server's metrics registry, borrowed until st_server_destroy() (for
 * tests; it is rendered by the metrics endpoint). */
st_metrics_t *st_server_metrics(st_server_t *s);

/*
 * Serves until *stop becomes non-zero (checked at least every 100 ms;
 * signal handlers set it) and returns 0, or returns an error that stops
 * the whole server (epoll failing: ST_EIO with errstr). Clients stay
 * connected across a return; st_server_destroy() closes them.
 */
int st_server_run(st_server_t *s, volatile sig_atomic_t *stop,
		  char *errstr, size_t errstr_size);

/* Closes every connection and the listening socket, stops the metrics
 * endpoint, closes the state and the model, frees everything. NULL is
 * allowed. */
void st_server_destroy(st_server_t *s);

#endif
