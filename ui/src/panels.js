/**
 * The dashboard's pages and panels, in one registry. A page is a tab (Cluster, Models, Jobs);
 * a panel is one section of a page that renders from the live topics (`data.cluster`,
 * `data.models`, …, as the gateway's feed pushes them: gateway/ui-feed.ts).
 *
 * Later work adds its own here without touching the others: a page and panels for Monitoring
 * (drift per feature, quality over time), Features, Cost (per tenant / model) and Pipelines
 * (runs), each reading the topic its gateway source adds (`DashboardFeed.addSource`).
 */

/** @typedef {{ id: string, title: string, order: number }} Page */
/** @typedef {{ id: string, page: string, title: string, order: number, topic: string, render: (props: { data: Record<string, any>, value: any }) => any }} Panel */

/** @type {Page[]} */
const pages = [];
/** @type {Panel[]} */
const panels = [];

export function registerPage(page) {
  if (pages.some((p) => p.id === page.id)) throw new Error(`page ${page.id} registered twice`);
  pages.push(page);
  pages.sort((a, b) => a.order - b.order);
}

export function registerPanel(panel) {
  if (panels.some((p) => p.page === panel.page && p.id === panel.id)) throw new Error(`panel ${panel.page}/${panel.id} registered twice`);
  panels.push(panel);
  panels.sort((a, b) => a.order - b.order);
}

export const allPages = () => pages;
export const panelsOf = (page) => panels.filter((p) => p.page === page);
