/**
 * Register the vhost character devices (and the tun device vhost-net uses) with a kernel.
 */
import type { Kernel } from '../kernel/kernel.js';
import { openVhostNet } from './net.js';
import { openTun } from './tap.js';

export function registerVhost(k: Kernel): void {
  k.devices.set('/dev/vhost-net', openVhostNet);
  k.devices.set('/dev/net/tun', openTun);
}
