package org.kbnn.demo.core;

import java.io.File;
import java.io.IOException;

/**
 * Command line check of an exported assets folder with the app's own validator:
 * {@code java -cp <classes> org.kbnn.demo.core.ValidateAssets android_demo/app/src/main/assets}.
 * Prints what the model-info screen would show and exits 0, or prints each problem and exits 1.
 */
public final class ValidateAssets {
    private ValidateAssets() {}

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: ValidateAssets ASSETS_DIR");
            System.exit(2);
        }
        File dir = new File(args[0]);
        if (!dir.isDirectory()) {
            System.err.println("ValidateAssets: " + dir + " is not a directory");
            System.exit(2);
        }
        try {
            ModelAssets.Bundle bundle = ModelAssets.load(ModelAssets.directory(dir));
            for (String line : ModelInfo.describe(bundle.spec)) {
                System.out.println(line);
            }
            System.out.println("OK: " + dir + " passes the app's model.json validator");
        } catch (ModelSpecException e) {
            System.err.println("INVALID: " + dir);
            for (String problem : e.problems()) {
                System.err.println("  " + problem);
            }
            System.exit(1);
        } catch (IOException e) {
            System.err.println("ValidateAssets: cannot read " + dir + ": " + e);
            System.exit(1);
        }
    }
}
