/*
 * sanitizer.h — tells ASan and TSan about stack switches. Without these hooks
 * they report errors that are not there and miss ones that are.
 */
#ifndef GH_SCHED_SANITIZER_H
#define GH_SCHED_SANITIZER_H

#include <stddef.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define GH_ASAN 1
#else
#define GH_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define GH_TSAN 1
#else
#define GH_TSAN 0
#endif

#if GH_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define GH_ASAN_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define GH_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#if GH_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

#endif /* GH_SCHED_SANITIZER_H */
