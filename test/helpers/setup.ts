// Runs in every test file (jest.config.js, setupFilesAfterEnv): once the file ends, no bgrm process it
// started is left running.
import { killLeftovers } from './cli';

afterAll(() => killLeftovers());
