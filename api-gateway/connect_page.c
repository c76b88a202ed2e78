/*
 * connect_page.c - GET /connect?session_token=…, the page a connect_link opens: the
 * integrations the session allows, each with what its auth mode needs (a button that
 * starts the OAuth flow, or a small form for an API key or user/password). It uses only
 * the auth routes of auth_flows.c, with the session token; no secret key reaches the
 * browser. Deliberately plain: one server-rendered page, a few lines of script.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect_sessions.h"
#include "providers/custom_providers.h"
#include "store/integrations.h"

typedef struct {
    char *data;
    size_t len, cap;
} page_t;

static void put(page_t *p, const char *text)
{
    size_t n = strlen(text);
    if (p->len + n + 1 > p->cap) {
        p->cap = (p->len + n + 1) * 2;
        p->data = realloc(p->data, p->cap);
        if (!p->data)
            abort();
    }
    memcpy(p->data + p->len, text, n + 1);
    p->len += n;
}

/* Appends text escaped for HTML content and attribute values. */
static void put_escaped(page_t *p, const char *text)
{
    char one[2] = {0, 0};
    for (const char *c = text; *c; c++) {
        switch (*c) {
        case '<': put(p, "&lt;"); break;
        case '>': put(p, "&gt;"); break;
        case '&': put(p, "&amp;"); break;
        case '"': put(p, "&quot;"); break;
        case '\'': put(p, "&#39;"); break;
        default: one[0] = *c; put(p, one);
        }
    }
}

static const char *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static const char script[] =
    "<script>\n"
    "const token = document.body.dataset.token;\n"
    "function show(key, text, ok) { const e = document.getElementById('result-' + key);"
    " e.textContent = text; e.className = ok ? 'ok' : 'err'; }\n"
    "async function submitForm(ev, key, route) { ev.preventDefault();\n"
    "  const body = Object.fromEntries(new FormData(ev.target).entries());\n"
    "  const r = await fetch('/' + route + '/' + encodeURIComponent(key) +"
    " '?connect_session_token=' + token, {method: 'POST', headers: {'Content-Type':"
    " 'application/json'}, body: JSON.stringify(body)});\n"
    "  const j = await r.json().catch(() => ({}));\n"
    "  if (r.ok) show(key, 'Connected (' + j.connectionId + ')', true);\n"
    "  else show(key, (j.error && j.error.message) || ('HTTP ' + r.status), false); }\n"
    "function startOAuth(key) { window.open('/oauth/connect/' + encodeURIComponent(key) +"
    " '?connect_session_token=' + token, 'junction-oauth', 'width=600,height=700'); }\n"
    "window.addEventListener('message', (ev) => { const m = ev.data || {};\n"
    "  if (m.type === 'nango_oauth_callback_success' && m.data) show(m.data.providerConfigKey,"
    " 'Connected (' + m.data.connectionId + ')', true);\n"
    "  if (m.type === 'nango_oauth_callback_error') document.getElementById('status').textContent ="
    " m.payload.message; });\n"
    "</script>\n";

static void render_integration(page_t *p, const jn_integration_t *it, json_object *provider)
{
    const char *mode = field(provider, "auth_mode");
    put(p, "<section><h2>");
    put_escaped(p, it->display_name ? it->display_name : it->unique_key);
    put(p, "</h2>");
    if (strcmp(mode, "OAUTH2") == 0) {
        put(p, "<button onclick=\"startOAuth(this.dataset.key)\" data-key=\"");
        put_escaped(p, it->unique_key);
        put(p, "\">Connect</button>");
    } else if (strcmp(mode, "API_KEY") == 0 || strcmp(mode, "BASIC") == 0 ||
               strcmp(mode, "OAUTH2_CC") == 0 || strcmp(mode, "NONE") == 0) {
        const char *route = strcmp(mode, "API_KEY") == 0     ? "api-auth/api-key"
                            : strcmp(mode, "BASIC") == 0     ? "api-auth/basic"
                            : strcmp(mode, "OAUTH2_CC") == 0 ? "oauth2/auth"
                                                             : "auth/unauthenticated";
        put(p, "<form data-key=\"");
        put_escaped(p, it->unique_key);
        put(p, "\" onsubmit=\"submitForm(event, this.dataset.key, '");
        put(p, route);
        put(p, "')\">");
        const char *inputs[3][2] = {{NULL, NULL}};
        if (strcmp(mode, "API_KEY") == 0) {
            inputs[0][0] = "apiKey", inputs[0][1] = "API key";
        } else if (strcmp(mode, "BASIC") == 0) {
            inputs[0][0] = "username", inputs[0][1] = "User name";
            inputs[1][0] = "password", inputs[1][1] = "Password";
        } else if (strcmp(mode, "OAUTH2_CC") == 0) {
            inputs[0][0] = "client_id", inputs[0][1] = "Client ID";
            inputs[1][0] = "client_secret", inputs[1][1] = "Client secret";
        }
        for (int i = 0; i < 3 && inputs[i][0]; i++) {
            put(p, "<label>");
            put(p, inputs[i][1]);
            put(p, " <input name=\"");
            put(p, inputs[i][0]);
            put(p, strcmp(inputs[i][0], "username") == 0 || strcmp(inputs[i][0], "client_id") == 0
                       ? "\" autocomplete=\"off\" required></label> "
                       : "\" type=\"password\" autocomplete=\"off\" required></label> ");
        }
        put(p, "<button>Connect</button></form>");
    } else {
        put(p, "<p>This integration cannot be connected from this page.</p>");
    }
    put(p, "<p id=\"result-");
    put_escaped(p, it->unique_key);
    put(p, "\"></p></section>");
}

static void connect_page(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    const char *token = jn_http_query(req, "session_token");
    if (!token || !jn_connect_token_well_formed(token)) {
        jn_http_respond_text(res, 400, "text/plain; charset=utf-8",
                             "This link needs a valid session_token.\n");
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_connect_session_t s;
    jn_err_t err = jn_connect_sessions_find(conn, token, &s);
    if (err) {
        jn_api_db_release(gw, conn);
        jn_http_respond_text(res, err == JN_ERR_NOT_FOUND ? 401 : 503, "text/plain; charset=utf-8",
                             err == JN_ERR_NOT_FOUND ? "This link has expired.\n"
                                                     : "Please try again shortly.\n");
        return;
    }
    jn_integration_t *list = NULL;
    size_t n = 0;
    err = jn_integrations_list(conn, s.env_id, &list, &n);
    page_t p = {0};
    put(&p, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Connect</title>"
            "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
            "section{border:1px solid #ccc;border-radius:6px;padding:0 1em 1em;margin:1em 0}"
            ".ok{color:#070}.err{color:#a00}</style></head><body data-token=\"");
    put_escaped(&p, token);
    put(&p, "\"><h1>Connect your accounts</h1><p id=\"status\"></p>");
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!err && jn_connect_session_allows(&s, list[i].unique_key)) {
            json_object *provider = NULL;
            if (jn_providers_lookup(gw->catalog, conn, s.env_id, list[i].provider, &provider) ==
                JN_OK) {
                render_integration(&p, &list[i], provider);
                shown++;
            }
            json_object_put(provider);
        }
        jn_integration_cleanup(&list[i]);
    }
    free(list);
    if (shown == 0)
        put(&p, "<p>There is nothing to connect.</p>");
    put(&p, script);
    put(&p, "</body></html>\n");
    jn_api_db_release(gw, conn);
    jn_connect_session_cleanup(&s);
    res->status = 200;
    res->content_type = "text/html; charset=utf-8";
    free(res->body);
    res->body = p.data;
    res->body_len = p.len;
    jn_http_add_header(res, "Cache-Control", "no-store");
    jn_http_add_header(res, "Content-Security-Policy",
                       "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
}

void jn_routes_connect_page(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/connect", connect_page, gw);
}
