/* Guest instruction counter for qemu's TCG plugin interface (API version 1, QEMU 7.x), used to
 * measure instructions per inference of a Cortex-M firmware under qemu-system-arm.
 *
 * Every translated block adds its instruction count to one counter when it runs (inline add:
 * exact for a single-CPU guest).  With the argument marker=<hex address>, the counter's value is
 * also recorded each time the block starting at that address runs; the recorded values are
 * printed at exit as "mark <k> <count>" after "insns <total>".  The few declarations needed from
 * qemu-plugin.h are repeated here so that no qemu development package is required. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGIN_EXPORT __attribute__((visibility("default")))
#define MAX_MARKS 65536

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*vcpu_udata_cb)(unsigned int, void *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op, void *,
                                              uint64_t);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, vcpu_udata_cb,
                                          enum qemu_plugin_cb_flags, void *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
void qemu_plugin_outs(const char *);

PLUGIN_EXPORT int qemu_plugin_version = 1;

static uint64_t executed;
static uint64_t marker;
static uint64_t *marks;
static size_t mark_count;

static void on_marker(unsigned int cpu, void *unused) {
  (void)cpu;
  (void)unused;
  if (mark_count < MAX_MARKS) {
    marks[mark_count++] = executed;
  }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  if (marker != 0 && qemu_plugin_tb_vaddr(tb) == marker) {
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_marker, QEMU_PLUGIN_CB_NO_REGS, NULL);
  }
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                           qemu_plugin_tb_n_insns(tb));
}

static void report_counts(qemu_plugin_id_t id, void *unused) {
  char line[80];
  (void)id;
  (void)unused;
  snprintf(line, sizeof line, "insns %llu\n", (unsigned long long)executed);
  qemu_plugin_outs(line);
  for (size_t k = 0; k < mark_count; ++k) {
    snprintf(line, sizeof line, "mark %zu %llu\n", k, (unsigned long long)marks[k]);
    qemu_plugin_outs(line);
  }
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                      char **argv) {
  (void)info;
  for (int k = 0; k < argc; ++k) {
    if (strncmp(argv[k], "marker=", 7) == 0) {
      marker = strtoull(argv[k] + 7, NULL, 16);
    }
  }
  marks = calloc(MAX_MARKS, sizeof *marks);
  if (marks == NULL) {
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, report_counts, NULL);
  return 0;
}
