/*
 * harness.c - integration-test plumbing (see harness.h).
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *jn_test_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set: run the tests through tests/run.sh", name);
    return v;
}

void jn_test_unique(const char *prefix, char *out, size_t cap)
{
    static int counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, cap, "%s_%ld_%ld_%d", prefix, (long)getpid(), (long)(ts.tv_nsec / 1000) % 100000,
             ++counter);
}

int jn_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    close(fd);
    return ntohs(addr.sin_port);
}

void jn_test_spawn(jn_test_process_t *p, const char *const *argv, const char *const *extra_env,
                   const char *log_name)
{
    memset(p, 0, sizeof *p);
    const char *dir = getenv("JN_TEST_LOG_DIR");
    snprintf(p->log_path, sizeof p->log_path, "%s/%s.log", dir ? dir : ".", log_name);

    size_t n_env = 0, n_extra = 0;
    while (environ[n_env])
        n_env++;
    while (extra_env && extra_env[n_extra])
        n_extra++;
    char **envp = calloc(n_env + n_extra + 1, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        bool overridden = false;
        const char *eq = strchr(environ[i], '=');
        size_t name_len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        for (size_t j = 0; j < n_extra && !overridden; j++)
            overridden =
                strncmp(extra_env[j], environ[i], name_len) == 0 && extra_env[j][name_len] == '=';
        if (!overridden)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        envp[k++] = (char *)extra_env[j];

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, p->log_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    int rc = posix_spawn(&p->pid, argv[0], &actions, NULL, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    free(envp);
    if (rc != 0)
        fail_msg("cannot start %s: %s", argv[0], strerror(rc));
}

void jn_test_signal(jn_test_process_t *p, int sig)
{
    if (p->pid > 0)
        kill(p->pid, sig);
}

bool jn_test_process_wait(jn_test_process_t *p, int timeout_ms)
{
    if (p->pid <= 0)
        return true;
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int status = 0;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            p->pid = 0;
            return true;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

void jn_test_process_kill(jn_test_process_t *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        int status;
        waitpid(p->pid, &status, 0);
        p->pid = 0;
    }
}

char *jn_test_read_log(const jn_test_process_t *p)
{
    FILE *f = fopen(p->log_path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc(1, (size_t)n + 1);
    size_t got = fread(text, 1, (size_t)n, f);
    text[got] = '\0';
    fclose(f);
    return text;
}

typedef struct {
    char *data;
    size_t len;
    size_t cap; /* bytes allocated at data */
} sink_t;

/* Appends a chunk, doubling the buffer when it is full: a body of many megabytes arrives
 * in thousands of chunks, and growing by each would copy it thousands of times. */
static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sink_t *s = ud;
    size_t n = size * nmemb;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *grown = realloc(s->data, cap);
        if (!grown)
            return 0;
        s->data = grown;
        s->cap = cap;
    }
    memcpy(s->data + s->len, ptr, n);
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

long jn_test_http(const char *method, const char *url, const char *const *headers,
                  const char *req_body, size_t req_body_len, char **body)
{
    return jn_test_http_headers(method, url, headers, req_body, req_body_len, body, NULL);
}

long jn_test_http_headers(const char *method, const char *url, const char *const *headers,
                          const char *req_body, size_t req_body_len, char **body,
                          char **resp_headers)
{
    CURL *curl = curl_easy_init();
    sink_t sink = {calloc(1, 1), 0, 1};
    sink_t head = {calloc(1, 1), 0, 1};
    if (resp_headers) {
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head);
    }
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (req_body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req_body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req_body_len);
    }
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    if (body)
        *body = sink.data;
    else
        free(sink.data);
    if (resp_headers)
        *resp_headers = head.data;
    else
        free(head.data);
    return status;
}

int jn_test_header_value(const char *headers, const char *name, char *out, size_t cap)
{
    int count = 0;
    size_t n = strlen(name);
    if (out && cap)
        out[0] = '\0';
    for (const char *line = headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            if (out && count == 0)
                snprintf(out, cap, "%.*s", (int)(len - (size_t)(v - line)), v);
            count++;
        }
        line = end ? end + 2 : line + len;
    }
    return count;
}

bool jn_test_wait_until(bool (*fn)(void *ud), void *ud, int timeout_ms)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (fn(ud))
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed =
            (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
        if (elapsed > timeout_ms)
            return false;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int jn_test_run(const char *command)
{
    char line[2048];
    snprintf(line, sizeof line, "cd '%s' && %s", jn_test_env("JUNCTION_REPO_DIR"), command);
    int status = system(line);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static PGconn *connect_or_fail(const char *url)
{
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(conn));
    return conn;
}

void jn_test_create_database(const char *name, char *url_out, size_t cap)
{
    const char *base = jn_test_env("JUNCTION_DATABASE_URL");
    PGconn *conn = connect_or_fail(base);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
    PQclear(PQexec(conn, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("CREATE DATABASE %s: %s", name, PQerrorMessage(conn));
    PQclear(r);
    PQfinish(conn);
    /* Same server and credentials, other database: replace the path of the URL. */
    const char *slash = strrchr(base, '/');
    snprintf(url_out, cap, "%.*s/%s", (int)(slash - base), base, name);
}

void jn_test_drop_database(const char *name)
{
    PGconn *conn = connect_or_fail(jn_test_env("JUNCTION_DATABASE_URL"));
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PQclear(PQexec(conn, sql));
    PQfinish(conn);
}

char *jn_test_sql_value(const char *url, const char *sql)
{
    PGconn *conn = connect_or_fail(url);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    char *value = PQntuples(r) > 0 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    PQfinish(conn);
    return value;
}

#include <json-c/json.h>

void jn_test_gateway_ports(char *env_port, char *env_admin, char *url, char *admin_url)
{
    int port = jn_test_free_port(), admin = jn_test_free_port();
    while (admin == port)
        admin = jn_test_free_port();
    snprintf(env_port, 64, "JUNCTION_PORT=%d", port);
    snprintf(env_admin, 64, "JUNCTION_ADMIN_PORT=%d", admin);
    snprintf(url, 64, "http://127.0.0.1:%d", port);
    snprintf(admin_url, 64, "http://127.0.0.1:%d", admin);
}

static bool gateway_up(void *ud)
{
    char url[96];
    snprintf(url, sizeof url, "%s/health", ((jn_test_gateway_t *)ud)->admin_url);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 200;
}

void jn_test_gateway_start(jn_test_gateway_t *gw, const char *gateway_bin,
                           const char *const *extra_env)
{
    memset(gw, 0, sizeof *gw);
    jn_test_unique("jt_gw", gw->db, sizeof gw->db);
    jn_test_create_database(gw->db, gw->db_url, sizeof gw->db_url);
    snprintf(gw->dev_key, sizeof gw->dev_key - 0, "test-dev-key-%s", gw->db);
    snprintf(gw->prod_key, sizeof gw->prod_key, "test-prod-key-%s", gw->db);
    static char e_db[600], e_port[64], e_admin[64], e_dev[200], e_prod[200], e_prefix[128];
    jn_test_gateway_ports(e_port, e_admin, gw->url, gw->admin_url);
    snprintf(e_db, sizeof e_db, "JUNCTION_DATABASE_URL=%s", gw->db_url);
    snprintf(e_dev, sizeof e_dev, "JUNCTION_SECRET_KEY_DEV=%s", gw->dev_key);
    snprintf(e_prod, sizeof e_prod, "JUNCTION_SECRET_KEY_PROD=%s", gw->prod_key);
    snprintf(e_prefix, sizeof e_prefix, "JUNCTION_TOPIC_PREFIX=%s", gw->db);
    static char e_server[128];
    snprintf(e_server, sizeof e_server, "JUNCTION_SERVER_URL=%s", gw->url);
    /* The caller's variables come first: the first of two equal names wins. */
    const char *env[32];
    size_t n = 0;
    for (size_t i = 0; extra_env && extra_env[i] && n < 22; i++)
        env[n++] = extra_env[i];
    const char *defaults[] = {e_db,
                              e_port,
                              e_admin,
                              e_dev,
                              e_prod,
                              e_prefix,
                              e_server,
                              "JUNCTION_TOPIC_PARTITIONS=1",
                              "JUNCTION_BIND_ADDRESS=127.0.0.1"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        env[n++] = defaults[i];
    env[n] = NULL;
    const char *argv[] = {gateway_bin, NULL};
    jn_test_spawn(&gw->proc, argv, env, gw->db);
    if (!jn_test_wait_until(gateway_up, gw, 60000)) {
        char *log = jn_test_read_log(&gw->proc);
        jn_test_process_kill(&gw->proc);
        fail_msg("gateway did not become healthy:\n%s", log);
    }
}

void jn_test_gateway_stop(jn_test_gateway_t *gw)
{
    jn_test_signal(&gw->proc, SIGTERM);
    bool exited = jn_test_process_wait(&gw->proc, 20000);
    if (!exited)
        jn_test_process_kill(&gw->proc);
    jn_test_drop_database(gw->db);
    assert_true(exited);
    assert_int_equal(gw->proc.exit_status, 0);
}

static bool healthy(void *ud)
{
    char url[96];
    snprintf(url, sizeof url, "%s/health", (const char *)ud);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 200;
}

void jn_test_gateway_beside(jn_test_process_t *p, const jn_test_gateway_t *gw, const char *bin,
                            const char *log_name, char *url, char *admin_url)
{
    char db_env[600], port_env[64], admin_env[64], dev_env[200], prod_env[200], prefix_env[160];
    jn_test_gateway_ports(port_env, admin_env, url, admin_url);
    snprintf(db_env, sizeof db_env, "JUNCTION_DATABASE_URL=%s", gw->db_url);
    snprintf(dev_env, sizeof dev_env, "JUNCTION_SECRET_KEY_DEV=%s", gw->dev_key);
    snprintf(prod_env, sizeof prod_env, "JUNCTION_SECRET_KEY_PROD=%s", gw->prod_key);
    snprintf(prefix_env, sizeof prefix_env, "JUNCTION_TOPIC_PREFIX=%s", gw->db);
    const char *env[] = {db_env,
                         port_env,
                         admin_env,
                         dev_env,
                         prod_env,
                         prefix_env,
                         "JUNCTION_BIND_ADDRESS=127.0.0.1",
                         "JUNCTION_TOPIC_PARTITIONS=1",
                         NULL};
    const char *argv[] = {bin, NULL};
    jn_test_spawn(p, argv, env, log_name);
    if (!jn_test_wait_until(healthy, admin_url, 60000)) {
        char *log = jn_test_read_log(p);
        jn_test_process_kill(p);
        fail_msg("%s did not become healthy:\n%s", log_name, log);
    }
}

char *jn_test_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = calloc(1, 1 << 20);
    if (!buf)
        abort();
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool livez(void *ud)
{
    char url[96];
    snprintf(url, sizeof url, "%s/livez", (const char *)ud);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 200;
}

void jn_test_service_start(jn_test_process_t *p, const jn_test_gateway_t *gw, const char *bin,
                           const char *log_name, const char *const *extra_env, char *admin_url)
{
    char e_db[600], e_dev[200], e_prod[200], e_prefix[128], e_worker[64], e_sched[64];
    int port = jn_test_free_port();
    snprintf(admin_url, 64, "http://127.0.0.1:%d", port);
    snprintf(e_db, sizeof e_db, "JUNCTION_DATABASE_URL=%s", gw->db_url);
    snprintf(e_dev, sizeof e_dev, "JUNCTION_SECRET_KEY_DEV=%s", gw->dev_key);
    snprintf(e_prod, sizeof e_prod, "JUNCTION_SECRET_KEY_PROD=%s", gw->prod_key);
    snprintf(e_prefix, sizeof e_prefix, "JUNCTION_TOPIC_PREFIX=%s", gw->db);
    snprintf(e_worker, sizeof e_worker, "JUNCTION_WORKER_PORT=%d", port);
    snprintf(e_sched, sizeof e_sched, "JUNCTION_SCHEDULER_PORT=%d", port);
    const char *env[40];
    size_t n = 0;
    for (size_t i = 0; extra_env && extra_env[i] && n < 30; i++)
        env[n++] = extra_env[i];
    const char *defaults[] = {e_db,
                              e_dev,
                              e_prod,
                              e_prefix,
                              e_worker,
                              e_sched,
                              "JUNCTION_TOPIC_PARTITIONS=1",
                              "JUNCTION_BIND_ADDRESS=127.0.0.1"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        env[n++] = defaults[i];
    env[n] = NULL;
    const char *argv[] = {bin, NULL};
    jn_test_spawn(p, argv, env, log_name);
    if (!jn_test_wait_until(livez, admin_url, 60000)) {
        char *log = jn_test_read_log(p);
        jn_test_process_kill(p);
        fail_msg("%s did not start:\n%s", log_name, log);
    }
}

bool jn_test_service_stop(jn_test_process_t *p, int timeout_ms)
{
    jn_test_signal(p, SIGTERM);
    bool exited = jn_test_process_wait(p, timeout_ms);
    if (!exited)
        jn_test_process_kill(p);
    return exited && p->exit_status == 0;
}

long jn_test_api(const jn_test_gateway_t *gw, const char *method, const char *path, const char *key,
                 const char *body, json_object **resp)
{
    char url[1024], auth[256];
    snprintf(url, sizeof url, "%s%s", gw->url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {"Content-Type: application/json", key ? auth : NULL, NULL};
    char *text = NULL;
    long status = jn_test_http(method, url, headers, body, body ? strlen(body) : 0, &text);
    if (resp)
        *resp = json_tokener_parse(text);
    free(text);
    return status;
}

const char *jn_test_json_str(json_object *o, const char *path)
{
    o = jn_test_json_get(o, path);
    return o ? json_object_get_string(o) : NULL;
}

json_object *jn_test_json_get(json_object *o, const char *path)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", path);
    char *save = NULL;
    for (char *part = strtok_r(copy, ".", &save); part && o; part = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(o, json_type_array)) {
            o = json_object_array_get_idx(o, (size_t)strtol(part, NULL, 10));
        } else if (!json_object_object_get_ex(o, part, &o)) {
            return NULL;
        }
    }
    return o;
}

void jn_test_expect_status(long got, long want, json_object *resp, const char *what)
{
    if (got != want)
        fail_msg("%s: %ld (wanted %ld) %s", what, got, want,
                 resp ? json_object_to_json_string(resp) : "");
}

long jn_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

long jn_test_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kb = strtol(line + n + 1, NULL, 10);
    }
    if (f)
        fclose(f);
    return kb;
}

/* ---- raw HTTP ---- */

#include <poll.h>

int jn_test_url_port(const char *url)
{
    const char *colon = strrchr(url, ':');
    return colon ? (int)strtol(colon + 1, NULL, 10) : 0;
}

int jn_test_connect(const char *from, int port)
{
    signal(SIGPIPE, SIG_IGN);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (from) {
        struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = 0};
        inet_pton(AF_INET, from, &local.sin_addr);
        if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool jn_test_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads what is there within the deadline into buf; 0 at the end of the stream or on a
 * reset, -1 when the time ran out. */
static ssize_t read_until(int fd, char *buf, size_t cap, long deadline_ms)
{
    for (;;) {
        long left = deadline_ms - jn_test_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = recv(fd, buf, cap, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return n < 0 ? 0 : n;
    }
}

int jn_test_read_response(int fd, int timeout_ms, jn_test_response_t *r)
{
    memset(r, 0, sizeof *r);
    long deadline = jn_test_now_ms() + timeout_ms;
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have + 1 >= sizeof r->head)
            return 0;
        ssize_t n = read_until(fd, r->head + have, sizeof r->head - 1 - have, deadline);
        if (n <= 0)
            return 0;
        have += (size_t)n;
        r->head[have] = '\0';
        end = strstr(r->head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - r->head) + 4;
    size_t extra = have - head_len;
    char length[32];
    long long want = -1;
    if (jn_test_header_value(r->head, "Content-Length", length, sizeof length) > 0)
        want = strtoll(length, NULL, 10);
    size_t cap = want >= 0 ? (size_t)want + 1 : 65536;
    if (cap < extra + 1)
        cap = extra + 1;
    r->body = malloc(cap);
    if (!r->body)
        abort();
    memcpy(r->body, r->head + head_len, extra);
    r->body_len = extra;
    r->head[head_len] = '\0';
    while (want < 0 || r->body_len < (size_t)want) {
        if (r->body_len + 1 >= cap) {
            cap *= 2;
            r->body = realloc(r->body, cap);
            if (!r->body)
                abort();
        }
        size_t room = cap - 1 - r->body_len;
        if (want >= 0 && room > (size_t)want - r->body_len)
            room = (size_t)want - r->body_len;
        ssize_t n = read_until(fd, r->body + r->body_len, room, deadline);
        if (n <= 0)
            break;
        r->body_len += (size_t)n;
    }
    r->body[r->body_len] = '\0';
    if (strncmp(r->head, "HTTP/1.", 7) == 0)
        r->status = (int)strtol(r->head + 9, NULL, 10);
    return r->status;
}

void jn_test_response_cleanup(jn_test_response_t *r)
{
    free(r->body);
    r->body = NULL;
}

bool jn_test_wait_closed(int fd, int timeout_ms)
{
    long deadline = jn_test_now_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        ssize_t n = read_until(fd, buf, sizeof buf, deadline);
        if (n == 0)
            return true;
        if (n < 0)
            return false;
    }
}

int jn_test_raw_request(int port, const char *request, size_t len, int timeout_ms,
                        jn_test_response_t *r)
{
    memset(r, 0, sizeof *r);
    int fd = jn_test_connect(NULL, port);
    if (fd < 0)
        return 0;
    jn_test_send(fd, request, len);
    int status = jn_test_read_response(fd, timeout_ms, r);
    close(fd);
    return status;
}

void jn_test_expect_error(const jn_test_response_t *r, int status, const char *code,
                          const char *what)
{
    if (r->status != status)
        fail_msg("%s: status %d (wanted %d): %s%s", what, r->status, status, r->head,
                 r->body ? r->body : "");
    char type[128];
    if (jn_test_header_value(r->head, "Content-Type", type, sizeof type) != 1 ||
        strncmp(type, "application/json", 16) != 0)
        fail_msg("%s: not JSON: %s", what, r->head);
    json_object *o = json_tokener_parse(r->body ? r->body : "");
    const char *got = jn_test_json_str(o, "error.code");
    const char *message = jn_test_json_str(o, "error.message");
    if (!got || strcmp(got, code) != 0 || !message || !*message)
        fail_msg("%s: wanted error code %s: %s", what, code, r->body ? r->body : "");
    json_object_put(o);
}
