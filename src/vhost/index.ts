/**
 * Register the vhost character devices (and the tun device vhost-net uses) with a kernel.
 */
import type { Kernel } from '../kernel/kernel.js';
import { openVhostNet } from './net.js';
import { openVhostScsi } from './scsi.js';
import { openTun } from './tap.js';
import { openVhostVsock } from './vsock.js';

export function registerVhost(k: Kernel): void {
  k.devices.set('/dev/vhost-net', openVhostNet);
  k.devices.set('/dev/vhost-scsi', openVhostScsi);
  k.devices.set('/dev/vhost-vsock', openVhostVsock);
  k.devices.set('/dev/net/tun', openTun);
}
