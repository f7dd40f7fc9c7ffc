/** The lab's seeded RNG lives in src/shared (data and io use it too); the engine re-exports it. */
export { Rng, randomArray } from '../shared/random.ts';
