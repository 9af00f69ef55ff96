/**
 * Node agent entry point: `node --import tsx nodes/main.ts --profile cpu-spot --node-id cpu-spot-1`.
 * Connects as its own NATS user (`node-<nodeId>`, the node role) with SHOAL_NATS_URL / SHOAL_NATS_USER / SHOAL_NATS_PASS.
 */
import { hostname } from 'node:os';
import { Errors, Role, parseFlags, runProcess } from '../cluster/index.ts';
import { NodeAgent } from './node-agent.ts';

const { flags } = parseFlags(process.argv.slice(2));
const profileName = flags.get('profile') ?? process.env.SHOAL_NODE_PROFILE;
const nodeId = flags.get('node-id') ?? process.env.SHOAL_NODE_ID ?? `${profileName ?? 'node'}-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;

await runProcess({
  role: Role.NODE,
  id: nodeId,
  extraFlags: ['profile', 'node-id'],
  async start(ctx) {
    const profile = profileName ? ctx.config.nodes.find((p) => p.name === profileName) : ctx.config.nodes[0];
    if (!profile) throw Errors.BAD_CONFIG('profile', `no node profile named "${profileName}" (known: ${ctx.config.nodes.map((p) => p.name).join(', ')})`);
    const agent = new NodeAgent(ctx, { nodeId, profile });
    agent.onDrained(() => process.kill(process.pid, 'SIGTERM'));
    await agent.start();
    return { stop: (reason) => agent.stop(reason), info: { profile: profile.name } };
  },
});
