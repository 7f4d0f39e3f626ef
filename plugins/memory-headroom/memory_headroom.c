/*
 * memory-headroom: a scheduler Filter plugin in C. A node fits a pod only
 * if, once the pod's memory request is placed on it, at least `percent`
 * (default 20) per cent of the node's allocatable memory stays free.
 * Otherwise the node is unschedulable for now, with the reason
 * "node(s) would keep less than 20% memory free".
 *
 * Configuration: {"percent": 20} (optional; an integer from 0 to 100).
 *
 * Uses nothing from WASI: only malloc/free from wasi-libc, which need no
 * imports, so the component imports nothing but skiff:plugins.
 *
 * Build: `make` in this folder (see the Makefile and ../README.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler_filter.h"

#define DEFAULT_PERCENT 20

static int64_t percent = DEFAULT_PERCENT;

/* Sets `*out` to a copy of `text` the caller (the bindings' post-return)
 * frees. */
static void set_string(scheduler_filter_string_t *out, const char *text) {
  scheduler_filter_string_dup(out, text);
}

/* A cursor over the configuration's JSON text. */
typedef struct {
  const uint8_t *at;
  const uint8_t *end;
} cursor_t;

static void skip_space(cursor_t *c) {
  while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) {
    c->at++;
  }
}

/* Skips a string whose opening quote is at the cursor; 0 when unterminated. */
static int skip_string(cursor_t *c) {
  c->at++;
  while (c->at < c->end) {
    if (*c->at == '\\') {
      c->at += 2;
    } else if (*c->at++ == '"') {
      return 1;
    }
  }
  return 0;
}

/* Skips one value of any kind; 0 when the text is not JSON enough. */
static int skip_value(cursor_t *c) {
  skip_space(c);
  if (c->at >= c->end) {
    return 0;
  }
  if (*c->at == '"') {
    return skip_string(c);
  }
  if (*c->at == '{' || *c->at == '[') {
    int depth = 0;
    while (c->at < c->end) {
      uint8_t ch = *c->at;
      if (ch == '"') {
        if (!skip_string(c)) {
          return 0;
        }
        continue;
      }
      c->at++;
      if (ch == '{' || ch == '[') {
        depth++;
      } else if (ch == '}' || ch == ']') {
        if (--depth == 0) {
          return 1;
        }
      }
    }
    return 0;
  }
  /* A number, true, false or null: up to the next delimiter. */
  const uint8_t *start = c->at;
  while (c->at < c->end && *c->at != ',' && *c->at != '}' && *c->at != ']' && *c->at != ' ' && *c->at != '\n' &&
         *c->at != '\t' && *c->at != '\r') {
    c->at++;
  }
  return c->at > start;
}

/* Reads a whole number in 0..=100 at the cursor into `*value`. */
static int read_percent(cursor_t *c, int64_t *value) {
  int64_t n = 0;
  const uint8_t *start = c->at;
  while (c->at < c->end && *c->at >= '0' && *c->at <= '9') {
    n = n * 10 + (*c->at++ - '0');
    if (n > 100) {
      return 0;
    }
  }
  if (c->at == start) {
    return 0;
  }
  skip_space(c);
  if (c->at < c->end && *c->at != ',' && *c->at != '}') {
    return 0;
  }
  *value = n;
  return 1;
}

/* Parses `{"percent": N, ...}`; returns NULL or the error text. */
static const char *parse_config(const uint8_t *text, size_t len, int64_t *value) {
  cursor_t c = {text, text + len};
  *value = DEFAULT_PERCENT;
  skip_space(&c);
  if (c.at >= c.end || *c.at != '{') {
    return "config must be a JSON object";
  }
  c.at++;
  skip_space(&c);
  if (c.at < c.end && *c.at == '}') {
    return NULL;
  }
  for (;;) {
    skip_space(&c);
    if (c.at >= c.end || *c.at != '"') {
      return "config is not JSON: expected a key";
    }
    const uint8_t *key = c.at + 1;
    if (!skip_string(&c)) {
      return "config is not JSON: unterminated string";
    }
    size_t key_len = (size_t)(c.at - key - 1);
    skip_space(&c);
    if (c.at >= c.end || *c.at++ != ':') {
      return "config is not JSON: expected ':'";
    }
    skip_space(&c);
    if (key_len == 7 && memcmp(key, "percent", 7) == 0) {
      if (!read_percent(&c, value)) {
        return "config.percent must be a whole number from 0 to 100";
      }
    } else if (!skip_value(&c)) {
      return "config is not JSON: bad value";
    }
    skip_space(&c);
    if (c.at < c.end && *c.at == ',') {
      c.at++;
      continue;
    }
    if (c.at < c.end && *c.at == '}') {
      return NULL;
    }
    return "config is not JSON: expected ',' or '}'";
  }
}

bool exports_scheduler_filter_init(scheduler_filter_string_t *config, scheduler_filter_string_t *err) {
  int64_t value;
  const char *problem = parse_config(config->ptr, config->len, &value);
  scheduler_filter_string_free(config);
  if (problem != NULL) {
    set_string(err, problem);
    return false;
  }
  percent = value;
  return true;
}

/* Whether `node` keeps `percent` of its allocatable memory free once
 * `request` more bytes are placed on it. */
static int keeps_headroom(const scheduler_filter_node_t *node, int64_t request) {
  int64_t left = node->free.memory - request;
  /* Both sides scaled by 100; memory sizes stay far below 2^56. */
  return left * 100 >= percent * node->allocatable.memory;
}

/* Writes "node(s) would keep less than N% memory free" into `out` (64
 * bytes), without printf and the code it would pull in. */
static void format_reason(char *out) {
  static const char head[] = "node(s) would keep less than ";
  static const char tail[] = "% memory free";
  char digits[4];
  int n = 0;
  int64_t value = percent;
  do {
    digits[n++] = (char)('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < 3);
  memcpy(out, head, sizeof head - 1);
  out += sizeof head - 1;
  while (n > 0) {
    *out++ = digits[--n];
  }
  memcpy(out, tail, sizeof tail);
}

bool exports_scheduler_filter_filter(scheduler_filter_pod_t *pod, scheduler_filter_list_node_t *nodes,
                                     scheduler_filter_list_verdict_t *ret, scheduler_filter_string_t *err) {
  char reason[64];
  format_reason(reason);
  size_t count = nodes->len;
  scheduler_filter_verdict_t *verdicts = count ? malloc(count * sizeof *verdicts) : NULL;
  if (count && verdicts == NULL) {
    set_string(err, "out of memory");
    scheduler_filter_pod_free(pod);
    scheduler_filter_list_node_free(nodes);
    return false;
  }
  for (size_t i = 0; i < count; i++) {
    if (keeps_headroom(&nodes->ptr[i], pod->requests.memory)) {
      verdicts[i].tag = SKIFF_PLUGINS_SCHEDULING_VERDICT_FITS;
    } else {
      verdicts[i].tag = SKIFF_PLUGINS_SCHEDULING_VERDICT_UNSCHEDULABLE;
      set_string(&verdicts[i].val.unschedulable, reason);
    }
  }
  ret->ptr = verdicts;
  ret->len = count;
  scheduler_filter_pod_free(pod);
  scheduler_filter_list_node_free(nodes);
  return true;
}
