/**
 * Node agent entry point: `node --import tsx nodes/main.ts --profile cpu-spot --node-id cpu-spot-1`
 * (or config `node.profile` / `node.id`, env `SHOAL_NODE_PROFILE` / `SHOAL_NODE_ID`). Connects as
 * its own NATS user (`node-<nodeId>`, the node role) with `nats.url` / `nats.user` / `nats.pass`.
 */
import { hostname } from 'node:os';
import { Errors, Role, parseFlags, runProcess, type Config } from '../cluster/index.ts';
import { NodeAgent } from './node-agent.ts';

// `--profile` and `--node-id` are the short flags every launcher uses; they win over the config.
const { flags } = parseFlags(process.argv.slice(2));
const profileOf = (config: Config) => flags.get('profile') ?? config.node.profile;
const nodeIdOf = (config: Config) => flags.get('node-id') ?? config.node.id ?? `${profileOf(config) ?? 'node'}-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;

await runProcess({
  role: Role.NODE,
  id: nodeIdOf,
  extraFlags: ['profile', 'node-id'],
  async start(ctx) {
    const profileName = profileOf(ctx.config);
    const profile = profileName ? ctx.config.nodes.find((p) => p.name === profileName) : ctx.config.nodes[0];
    if (!profile) throw Errors.BAD_CONFIG('node.profile', `no node profile named "${profileName}" (known: ${ctx.config.nodes.map((p) => p.name).join(', ')})`);
    const agent = new NodeAgent(ctx, { nodeId: nodeIdOf(ctx.config), profile });
    agent.onDrained(() => process.kill(process.pid, 'SIGTERM'));
    await agent.start();
    return { stop: (reason) => agent.stop(reason), info: { profile: profile.name } };
  },
});
