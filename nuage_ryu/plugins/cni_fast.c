/* nuage-cni, compiled fast path (python -m nuage_ryu.plugins.launcher install --compiled).
 *
 * A runtime execs the CNI plugin for every ADD, DEL, CHECK, ...; a Python plugin
 * costs 14-16 ms of CPU per exec before doing anything (the interpreter start is 11),
 * a compiled one 0.8 ms (docs/cni.md, "The lower bound on 2 cores"). This program does
 * no CNI work itself: it hands the CNI_* environment and stdin to the host's agent
 * (POST /v1/cni on the agent socket), which runs the very same Python code
 * (nuage_ryu.plugins.cni.execute) in its own process, and prints what the agent answers
 * with its exit status. Whenever that is not possible (agent socket missing or refusing,
 * an agent without /v1/cni, a broken answer) it execs the Python plugin (FALLBACK_SCRIPT,
 * with the same stdin), so every error is reported exactly as the Python plugin does.
 *
 * The agent socket is the configuration's top-level "agent_socket" (else the default);
 * nothing else of the JSON is interpreted here. Built with
 *   cc -O2 -DFALLBACK_PYTHON='"/venv/bin/python"' -DFALLBACK_SCRIPT='"/bin/nuage-cni-python"'
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef FALLBACK_PYTHON
#error "FALLBACK_PYTHON must be defined"
#endif
#ifndef FALLBACK_SCRIPT
#error "FALLBACK_SCRIPT must be defined"
#endif
#define DEFAULT_AGENT_SOCKET "/run/nuage-ryu/agent.sock"
#define MAX_INPUT (1 << 20)   /* the agent refuses larger bodies anyway */
#define TIMEOUT_S 70          /* an ADD waits for the vport up (agent: 10 s) and the directory */

extern char **environ;
static int g_argc;
static char **g_argv;

struct buf {
    char *data;
    size_t len, cap;
};

static int put(struct buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static int puts_(struct buf *b, const char *s) { return put(b, s, strlen(s)); }

/* A JSON string of the bytes s[0..n): bytes >= 0x80 as \u00XX, so that the agent gets every
 * byte back exactly (it decodes the string as latin-1). */
static int put_json_string(struct buf *b, const unsigned char *s, size_t n) {
    char esc[8];
    if (put(b, "\"", 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            if (put(b, esc, 2))
                return -1;
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            if (put(b, esc, 6))
                return -1;
        } else if (put(b, (const char *)&c, 1)) {
            return -1;
        }
    }
    return put(b, "\"", 1);
}

/* Skip a JSON string starting at s[i] == '"'; returns the index after its closing quote. */
static size_t skip_string(const char *s, size_t n, size_t i) {
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

/* The value of the top-level key "agent_socket" when it is a plain string (no escapes);
 * NULL otherwise (the agent then validates the configuration as a whole). */
static char *agent_socket_of(const char *s, size_t n) {
    static const char key[] = "\"agent_socket\"";
    int depth = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '"') {
            size_t end = skip_string(s, n, i);
            if (depth == 1 && end - i == sizeof key - 1 && memcmp(s + i, key, end - i) == 0) {
                size_t j = end;
                while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n'))
                    j++;
                if (j < n && s[j] == ':') {
                    j++;
                    while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n'))
                        j++;
                    if (j < n && s[j] == '"') {
                        size_t vend = skip_string(s, n, j);
                        if (vend <= n && memchr(s + j + 1, '\\', vend - j - 2) == NULL && vend - j >= 2)
                            return strndup(s + j + 1, vend - j - 2);
                    }
                    return NULL;
                }
            }
            i = end;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        i++;
    }
    return NULL;
}

/* Exec the Python plugin with the same stdin (it was consumed here: hand it over in a memfd). */
static void fallback(const char *in, size_t in_len) {
    int fd = memfd_create("nuage-cni-stdin", 0);
    if (fd >= 0) {
        size_t off = 0;
        while (off < in_len) {
            ssize_t w = write(fd, in + off, in_len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        char **argv = calloc((size_t)g_argc + 3, sizeof *argv);
        if (argv && off == in_len && lseek(fd, 0, SEEK_SET) == 0 && dup2(fd, 0) == 0) {
            close(fd);
            argv[0] = FALLBACK_PYTHON;
            argv[1] = "-IS";
            argv[2] = FALLBACK_SCRIPT;
            for (int i = 1; i < g_argc; i++)  /* e.g. --version: the Python plugin answers it */
                argv[2 + i] = g_argv[i];
            execv(FALLBACK_PYTHON, argv);
        }
    }
    printf("{\"cniVersion\": \"1.1.0\", \"code\": 100, \"msg\": \"nuage-cni: cannot run %s: %s\"}\n",
           FALLBACK_SCRIPT, strerror(errno));
    exit(1);
}

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct buf in = {0}, req = {0}, body = {0}, resp = {0};
    const char *command = getenv("CNI_COMMAND");
    char chunk[65536];

    g_argc = argc;
    g_argv = argv;
    if (argc > 1)  /* a runtime passes no arguments; a person may (--version): the Python plugin */
        fallback("", 0);

    /* stdin, as the Python plugin reads it (not for an interactive VERSION) */
    if (!(command && strcmp(command, "VERSION") == 0 && isatty(0))) {
        for (;;) {
            ssize_t r = read(0, chunk, sizeof chunk);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            if (put(&in, chunk, (size_t)r) || in.len > MAX_INPUT)
                fallback(in.data ? in.data : "", in.len);
        }
    }
    if (!in.data && put(&in, "", 0))
        return 1;

    char *path = agent_socket_of(in.data, in.len);
    if (!path || !*path)
        path = DEFAULT_AGENT_SOCKET;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        fallback(in.data, in.len);
    strcpy(addr.sun_path, path);

    /* {"env": {CNI_*...}, "stdin": "..."} */
    int first = 1;
    if (puts_(&body, "{\"env\": {"))
        fallback(in.data, in.len);
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "CNI_", 4) != 0 || !eq)
            continue;
        if ((!first && puts_(&body, ", ")) ||
            put_json_string(&body, (const unsigned char *)*e, (size_t)(eq - *e)) || puts_(&body, ": ") ||
            put_json_string(&body, (const unsigned char *)eq + 1, strlen(eq + 1)))
            fallback(in.data, in.len);
        first = 0;
    }
    if (puts_(&body, "}, \"stdin\": ") || put_json_string(&body, (const unsigned char *)in.data, in.len) ||
        puts_(&body, "}"))
        fallback(in.data, in.len);
    snprintf(chunk, sizeof chunk,
             "POST /v1/cni HTTP/1.1\r\nHost: nuage-agent\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n", body.len);
    if (puts_(&req, chunk) || put(&req, body.data, body.len))
        fallback(in.data, in.len);

    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = TIMEOUT_S};
    if (sock < 0 || setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
        setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) ||
        connect(sock, (struct sockaddr *)&addr, sizeof addr) || write_all(sock, req.data, req.len))
        fallback(in.data, in.len);
    for (;;) {
        ssize_t r = read(sock, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fallback(in.data, in.len);
        if (r == 0)
            break;
        if (put(&resp, chunk, (size_t)r))
            fallback(in.data, in.len);
    }
    close(sock);

    /* HTTP/1.1 200 ..., an X-CNI-Exit header, the plugin's stdout as the body */
    if (!resp.data || strncmp(resp.data, "HTTP/1.1 200 ", 13) != 0)
        fallback(in.data, in.len);
    char *end = strstr(resp.data, "\r\n\r\n");
    if (!end)
        fallback(in.data, in.len);
    *end = 0;
    char *exit_header = strcasestr(resp.data, "\r\nX-CNI-Exit: ");
    if (!exit_header)
        fallback(in.data, in.len);
    int code = atoi(exit_header + 14);
    char *out = end + 4;
    size_t out_len = resp.len - (size_t)(out - resp.data);
    if (write_all(1, out, out_len))
        return 1;
    return code;
}
