/* kbnn Cortex-M4 start-up for qemu's mps2-an386 board (ARMv7E-M).
 *
 * Reset: copy the initialised data from flash to RAM, clear .bss, give the FPU access (CPACR
 * CP10/CP11, so hard-float newlib may run), then call main().  With semihosting (the default)
 * newlib's rdimon handles are opened first and main's return value becomes the exit status of
 * qemu; with -DKBNN_BARE (the size probe) nothing of newlib is used and the core just waits. */
#include <stdint.h>

extern uint32_t __kbnn_data_load, __kbnn_data_start, __kbnn_data_end;
extern uint32_t __kbnn_bss_start, __kbnn_bss_end, __kbnn_stack_top;
extern int main(void);

#ifndef KBNN_BARE
#include <stdlib.h>
extern void initialise_monitor_handles(void);
/* -nostartfiles drops crti/crtn; newlib's __libc_init_array still calls these two. */
void _init(void) {}
void _fini(void) {}
#endif

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void kbnn_reset_handler(void) {
  const uint32_t *from = &__kbnn_data_load;
  uint32_t *to = &__kbnn_data_start;
  while (to < &__kbnn_data_end) {
    *to++ = *from++;
  }
  for (to = &__kbnn_bss_start; to < &__kbnn_bss_end; ++to) {
    *to = 0u;
  }
  CPACR |= 0xFu << 20;
  __asm volatile("dsb\n\tisb" ::: "memory");
#ifdef KBNN_BARE
  (void)main();
  for (;;) {
    __asm volatile("wfi");
  }
#else
  initialise_monitor_handles();
  exit(main());
#endif
}

/* Any fault: with semihosting, say so and stop qemu with a failure status (instead of hanging
 * until the caller's timeout); bare, wait for the debugger. */
static void kbnn_fault_handler(void) {
#ifndef KBNN_BARE
  static const char message[] = "ERROR fault (HardFault/NMI/...) in the firmware\n";
  register uint32_t operation __asm("r0") = 0x04u; /* SYS_WRITE0 */
  register const void *argument __asm("r1") = message;
  __asm volatile("bkpt 0xAB" : "+r"(operation) : "r"(argument) : "memory");
  operation = 0x18u;                  /* SYS_EXIT */
  argument = (const void *)0x20023u; /* ADP_Stopped_RunTimeErrorUnknown */
  __asm volatile("bkpt 0xAB" : "+r"(operation) : "r"(argument) : "memory");
#endif
  for (;;) {
  }
}

/* Cortex-M vector table: initial stack pointer, then the 15 system exception handlers. */
__attribute__((section(".kbnn_vectors"), used)) void (*const kbnn_vectors[16])(void) = {
    (void (*)(void))(&__kbnn_stack_top),
    kbnn_reset_handler,
    kbnn_fault_handler, /* NMI */
    kbnn_fault_handler, /* HardFault */
    kbnn_fault_handler, /* MemManage */
    kbnn_fault_handler, /* BusFault */
    kbnn_fault_handler, /* UsageFault */
    0, 0, 0, 0,
    kbnn_fault_handler, /* SVCall */
    kbnn_fault_handler, /* DebugMon */
    0,
    kbnn_fault_handler, /* PendSV */
    kbnn_fault_handler, /* SysTick */
};
