/** `shoal status [--json] [--wait MS]`: the processes and nodes that answer over NATS. */
import { parseFlags, type Config } from '../cluster/index.ts';
import { collectStatus, connectClient, formatStatus } from './status.ts';

export const STATUS_FLAGS = ['json', 'wait'] as const;

export async function statusCommand(rest: string[], config: Config): Promise<number> {
  const { flags } = parseFlags(rest);
  const nc = await connectClient(config);
  try {
    const report = await collectStatus(nc, config, Number(flags.get('wait') ?? 500));
    process.stdout.write(flags.has('json') ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
    return report.processes.length > 0 ? 0 : 1;
  } finally {
    await nc.close();
  }
}
