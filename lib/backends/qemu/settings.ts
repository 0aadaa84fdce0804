// The qemu backend's settings from the environment: the guest's sample
// interval, its thrashing protection, the boot's attempts and time limit.
import type { AccelChoice } from "../../vm/qemu.ts";

/**
 * How often the guest samples MemTotal - MemAvailable (PERF_QEMU_SAMPLE_MS):
 * 50 ms under KVM, as the other backends; 100 ms under TCG, where each
 * sample costs the one emulated vCPU enough to slow the upload (about 10 %
 * at 50 ms, measured here).
 */
export function guestSampleMs(accel: AccelChoice["accel"]): number {
  return Number(process.env.PERF_QEMU_SAMPLE_MS) || (accel === "kvm" ? 50 : 100);
}
/**
 * Guest thrashing protection (multi-gen LRU min_ttl_ms), off by default: a
 * stock kernel thrashes near its memory limit rather than OOM-killing, and
 * the harness measures a stock kernel. PERF_QEMU_MIN_TTL_MS=1000 turns
 * a slow thrash into a quick OOM kill, at the price of killing sooner.
 */
export const GUEST_MIN_TTL_MS = Number(process.env.PERF_QEMU_MIN_TTL_MS) || 0;
/** Boot attempts: a second one only for a boot that timed out or a qemu that would not start. */
export const BOOT_ATTEMPTS = 2;

export function bootTimeoutMs(accel: AccelChoice["accel"]): number {
  const s = Number(process.env.PERF_QEMU_BOOT_TIMEOUT);
  return (s > 0 ? s : accel === "kvm" ? 60 : 180) * 1000;
}
