/** The virtual clock and seeded PRNG the simulations use (both live in cluster/). */
export { VirtualClock, seededRandom } from '../../cluster/index.ts';
