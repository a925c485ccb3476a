// bgrm models: the same as bgrm models list.
import ModelsList from './list';

export default class Models extends ModelsList {
  static description = 'List known models and show which are installed (same as models list)';
}
