import { defineError } from '../cluster/index.ts';

/** The gateway's own codes (HTTP edge). */
export const GatewayErrors = {
  NOT_FOUND: defineError('SHOAL_ERR_NOT_FOUND', 404, (what: string) => `${what} not found`, 'gateway'),
  BAD_REQUEST: defineError('SHOAL_ERR_BAD_REQUEST', 400, (why: string) => why, 'gateway'),
} as const;
