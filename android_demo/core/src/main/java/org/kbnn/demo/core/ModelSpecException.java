package org.kbnn.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** model.json (or an asset it names) is not usable; every problem found is listed. */
public final class ModelSpecException extends Exception {
    private static final long serialVersionUID = 1L;
    private final List<String> problems;

    public ModelSpecException(List<String> problems) {
        super(join(problems));
        this.problems = Collections.unmodifiableList(new ArrayList<String>(problems));
    }

    public ModelSpecException(String problem) {
        this(Collections.singletonList(problem));
    }

    /** Each problem as one line, e.g. {@code "input.shape: expected [1, height, width, 1], got [28, 28]"}. */
    public List<String> problems() {
        return problems;
    }

    private static String join(List<String> problems) {
        if (problems.isEmpty()) {
            throw new IllegalArgumentException("a ModelSpecException needs at least one problem");
        }
        StringBuilder out = new StringBuilder("invalid model.json: ");
        for (int i = 0; i < problems.size(); i++) {
            if (i > 0) {
                out.append("; ");
            }
            out.append(problems.get(i));
        }
        return out.toString();
    }
}
