/**
 * "Hosts" for multi-host tests: Linux network namespaces joined by veth pairs to a private bridge,
 * made here with `ip` (iproute2) and removed in `destroy()`. Root only; `netnsUnavailable()` says
 * why not otherwise, so a suite can skip with the reason. Each host has its own port space, so
 * every host's servers use the same well-known ports. Traffic stays on this bridge and loopback.
 */
import { execFileSync } from 'node:child_process';

export interface Host {
  name: string;
  /** The namespace's address on the bridge. */
  ip: string;
  /** Prefix that runs a command inside the namespace (exec in place: same pid). */
  exec: readonly string[];
  /** Cuts the host off the bridge (its link down), as a partition. */
  partition(): void;
  heal(): void;
}

export interface Hosts {
  hosts: Host[];
  /** The bridge's own address (the root namespace: where the test process is). */
  gatewayIp: string;
  destroy(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' }).toString();

/** Why namespaces cannot be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `shoal-probe-${process.pid}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return undefined;
  } catch (err) {
    return `ip netns add failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

export function createHosts(count: number): Hosts {
  // Names fit IFNAMSIZ (15); the subnet is derived from the pid so parallel suites do not meet.
  const tag = (process.pid % 9000).toString(36);
  const subnet = `10.213.${process.pid % 250}`;
  const bridge = `shb${tag}`;
  const made: string[] = [];
  const destroy = () => {
    for (const ns of made) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* already gone */
      }
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      /* already gone */
    }
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const hosts: Host[] = [];
    for (let i = 1; i <= count; i++) {
      const ns = `shoal-${tag}-h${i}`;
      const outer = `sv${tag}${i}`;
      ip('netns', 'add', ns);
      made.push(ns);
      ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('link', 'set', outer, 'master', bridge);
      ip('link', 'set', outer, 'up');
      const addr = `${subnet}.${10 + i}`;
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts.push({
        name: ns,
        ip: addr,
        exec: ['ip', 'netns', 'exec', ns],
        partition: () => ip('link', 'set', outer, 'down'),
        heal: () => ip('link', 'set', outer, 'up'),
      });
    }
    return { hosts, gatewayIp: `${subnet}.1`, destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}
