/**
 * The KVM userspace ABI the model implements: ioctl numbers (include/uapi/linux/kvm.h,
 * encoded as include/uapi/asm-generic/ioctl.h does), exit reasons, and the layouts of
 * struct kvm_run (the head of it) and struct kvm_userspace_memory_region, v6.12.
 */

// ------------------------------------------------------------------ _IOC encoding (asm-generic/ioctl.h)

export const _IOC_NRBITS = 8;
export const _IOC_TYPEBITS = 8;
export const _IOC_SIZEBITS = 14;
export const _IOC_NRSHIFT = 0;
export const _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
export const _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
export const _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;

/**
 * _IOC(dir, type, nr, size) as an unsigned 32-bit number.
 * @example _IOC(_IOC_WRITE, 0xae, 0x46, 32) === 0x4020ae46
 */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size < 0 || size >= 1 << _IOC_SIZEBITS) throw new RangeError(`ioctl size ${size} out of range`);
  return (
    ((dir << _IOC_DIRSHIFT) | (type << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)) >>>
    0
  );
}
export const _IO = (type: number, nr: number): number => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number =>
  _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
/** _IOC_TYPE(cmd) */
export const _IOC_TYPE = (cmd: number): number => (cmd >>> _IOC_TYPESHIFT) & ((1 << _IOC_TYPEBITS) - 1);

// ------------------------------------------------------------------ struct layouts

/**
 * struct kvm_userspace_memory_region: u32 slot @0, u32 flags @4, u64 guest_phys_addr @8,
 * u64 memory_size @16, u64 userspace_addr @24 — 32 bytes, no padding.
 */
export const KVM_USERSPACE_MEMORY_REGION_SIZE = 32;
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;

/** struct kvm_run, the fields the model uses: immediate_exit @1, exit_reason (u32) @8. */
export const KVM_RUN_IMMEDIATE_EXIT_OFFSET = 1;
export const KVM_RUN_EXIT_REASON_OFFSET = 8;
/** bytes of struct kvm_run the model keeps (the real struct is 2352 bytes on x86-64) */
export const KVM_RUN_SIZE = 2352;

// ------------------------------------------------------------------ ioctls

export const KVMIO = 0xae;
/** the only API version there has ever been */
export const KVM_API_VERSION = 12;

// system ioctls (on /dev/kvm)
export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00); // 0xae00
export const KVM_CREATE_VM = _IO(KVMIO, 0x01); // 0xae01, arg = machine type
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03); // 0xae03
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04); // 0xae04

// VM ioctls
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41); // 0xae41, arg = vcpu id
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, KVM_USERSPACE_MEMORY_REGION_SIZE); // 0x4020ae46

// vCPU ioctls
export const KVM_RUN = _IO(KVMIO, 0x80); // 0xae80

/** x86: KVM_MAX_VCPU_IDS (arch/x86/include/asm/kvm_host.h, v6.12) */
export const KVM_MAX_VCPU_IDS = 4096;
/** x86: KVM_USER_MEM_SLOTS = KVM_MEM_SLOTS_NUM - KVM_INTERNAL_MEM_SLOTS (32767 - 3), v6.12 */
export const KVM_USER_MEM_SLOTS = 32764;

// ------------------------------------------------------------------ exit reasons (kvm_run.exit_reason)

export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
