import { h } from 'preact';
import htm from 'htm';

/** Tagged templates for Preact: no JSX build step. */
export const html = htm.bind(h);
