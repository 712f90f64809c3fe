import { writeReliabilityReport } from './scenario';

// Loaded with mocha's --file: runs once after every fault scenario.
after(() => writeReliabilityReport());
