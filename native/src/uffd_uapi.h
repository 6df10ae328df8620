// The Linux userfaultfd and PAGEMAP_SCAN interface, defined here because the
// build machines' kernel headers (Debian 12: 6.1) predate UFFD_FEATURE_WP_ASYNC
// (6.7), UFFD_FEATURE_WP_UNPOPULATED (6.4) and PAGEMAP_SCAN (6.7). The running
// kernel decides what works; these are only the ABI numbers and layouts.
//
// Values and layouts were checked against the kernel's own uapi headers,
// include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h (linux-mm tree,
// 6.18 era). Names carry a US_ prefix so they never collide with a newer
// system header that defines the originals.
#ifndef UNDERSTUDY_UFFD_UAPI_H
#define UNDERSTUDY_UFFD_UAPI_H

#ifdef __linux__

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>  // _IOR / _IOWR (asm-generic encoding on x86-64 and arm64)

// userfaultfd(2) flag: only faults raised in user mode are handled. Allowed
// without privilege even when vm.unprivileged_userfaultfd=0 (since 5.11).
#define US_UFFD_USER_MODE_ONLY 1

#define US_UFFD_API ((uint64_t)0xAA)

// uffdio_api.features bits.
#define US_UFFD_FEATURE_PAGEFAULT_FLAG_WP ((uint64_t)1 << 0)
#define US_UFFD_FEATURE_SIGBUS ((uint64_t)1 << 7)           // 4.14: a fault sends SIGBUS to the faulting thread instead of a message
#define US_UFFD_FEATURE_WP_UNPOPULATED ((uint64_t)1 << 13)  // 6.4: protect never-touched pages too
#define US_UFFD_FEATURE_WP_ASYNC ((uint64_t)1 << 15)        // 6.7: the kernel resolves WP faults itself

#define US_UFFDIO_REGISTER_MODE_WP ((uint64_t)1 << 1)
#define US_UFFDIO_WRITEPROTECT_MODE_WP ((uint64_t)1 << 0)
#define US_UFFDIO_WRITEPROTECT_MODE_DONTWAKE ((uint64_t)1 << 1)  // un-protect without waking faulting threads

#define US_UFFD_EVENT_PAGEFAULT 0x12
#define US_UFFD_PAGEFAULT_FLAG_WRITE ((uint64_t)1 << 0)
#define US_UFFD_PAGEFAULT_FLAG_WP ((uint64_t)1 << 1)

struct us_uffdio_api {
  uint64_t api;
  uint64_t features;
  uint64_t ioctls;
};

struct us_uffdio_range {
  uint64_t start;
  uint64_t len;
};

struct us_uffdio_register {
  struct us_uffdio_range range;
  uint64_t mode;
  uint64_t ioctls;
};

struct us_uffdio_writeprotect {
  struct us_uffdio_range range;
  uint64_t mode;
};

// What read(2) on a userfaultfd returns: 32 bytes, packed.
struct us_uffd_msg {
  uint8_t event;
  uint8_t reserved1;
  uint16_t reserved2;
  uint32_t reserved3;
  union {
    struct {
      uint64_t flags;
      uint64_t address;
      uint32_t ptid;
    } __attribute__((packed)) pagefault;
    struct {
      uint64_t reserved1;
      uint64_t reserved2;
      uint64_t reserved3;
    } reserved;
  } arg;
} __attribute__((packed));

#define US_UFFDIO 0xAA
#define US_UFFDIO_API _IOWR(US_UFFDIO, 0x3F, struct us_uffdio_api)
#define US_UFFDIO_REGISTER _IOWR(US_UFFDIO, 0x00, struct us_uffdio_register)
#define US_UFFDIO_UNREGISTER _IOR(US_UFFDIO, 0x01, struct us_uffdio_range)
#define US_UFFDIO_WAKE _IOR(US_UFFDIO, 0x02, struct us_uffdio_range)
#define US_UFFDIO_WRITEPROTECT _IOWR(US_UFFDIO, 0x06, struct us_uffdio_writeprotect)

// PAGEMAP_SCAN (fs.h), an ioctl on /proc/<pid>/pagemap.
#define US_PAGE_IS_WPALLOWED ((uint64_t)1 << 0)
#define US_PAGE_IS_WRITTEN ((uint64_t)1 << 1)
#define US_PAGE_IS_FILE ((uint64_t)1 << 2)
#define US_PAGE_IS_PRESENT ((uint64_t)1 << 3)
#define US_PAGE_IS_SWAPPED ((uint64_t)1 << 4)
#define US_PAGE_IS_PFNZERO ((uint64_t)1 << 5)

#define US_PM_SCAN_WP_MATCHING ((uint64_t)1 << 0)    // write-protect the pages matched
#define US_PM_SCAN_CHECK_WPASYNC ((uint64_t)1 << 1)  // fail (EPERM) on a page without async WP

struct us_page_region {
  uint64_t start;
  uint64_t end;  // exclusive
  uint64_t categories;
};

struct us_pm_scan_arg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;  // written by the kernel: where the walk stopped
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};

#define US_PAGEMAP_SCAN _IOWR('f', 16, struct us_pm_scan_arg)

// Layouts are asserted, not described: a wrong size or offset would make the
// kernel read or write the wrong bytes.
_Static_assert(sizeof(struct us_uffdio_api) == 24, "uffdio_api is 24 bytes");
_Static_assert(sizeof(struct us_uffdio_range) == 16, "uffdio_range is 16 bytes");
_Static_assert(sizeof(struct us_uffdio_register) == 32, "uffdio_register is 32 bytes");
_Static_assert(offsetof(struct us_uffdio_register, mode) == 16, "uffdio_register.mode at 16");
_Static_assert(sizeof(struct us_uffdio_writeprotect) == 24, "uffdio_writeprotect is 24 bytes");
_Static_assert(sizeof(struct us_uffd_msg) == 32, "uffd_msg is 32 bytes");
_Static_assert(offsetof(struct us_uffd_msg, arg) == 8, "uffd_msg.arg at 8");
_Static_assert(offsetof(struct us_uffd_msg, arg.pagefault.flags) == 8, "pagefault.flags at 8");
_Static_assert(offsetof(struct us_uffd_msg, arg.pagefault.address) == 16, "pagefault.address at 16");
_Static_assert(sizeof(struct us_page_region) == 24, "page_region is 24 bytes");
_Static_assert(sizeof(struct us_pm_scan_arg) == 96, "pm_scan_arg is 96 bytes");
_Static_assert(offsetof(struct us_pm_scan_arg, walk_end) == 32, "pm_scan_arg.walk_end at 32");
_Static_assert(offsetof(struct us_pm_scan_arg, vec) == 40, "pm_scan_arg.vec at 40");
_Static_assert(offsetof(struct us_pm_scan_arg, return_mask) == 88, "pm_scan_arg.return_mask at 88");

#if defined(__x86_64__) || defined(__aarch64__)
// The encoded request numbers, as the kernel computes them on the
// asm-generic ioctl layout these two architectures use.
_Static_assert(US_UFFDIO_API == 0xC018AA3Fu, "UFFDIO_API request number");
_Static_assert(US_UFFDIO_REGISTER == 0xC020AA00u, "UFFDIO_REGISTER request number");
_Static_assert(US_UFFDIO_UNREGISTER == 0x8010AA01u, "UFFDIO_UNREGISTER request number");
_Static_assert(US_UFFDIO_WAKE == 0x8010AA02u, "UFFDIO_WAKE request number");
_Static_assert(US_UFFDIO_WRITEPROTECT == 0xC018AA06u, "UFFDIO_WRITEPROTECT request number");
_Static_assert(US_PAGEMAP_SCAN == 0xC0606610u, "PAGEMAP_SCAN request number");
#endif

#endif  // __linux__
#endif
