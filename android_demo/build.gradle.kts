// Versions tested together: Android Gradle Plugin 8.5 needs Gradle >= 8.7 and JDK 17.
plugins {
    id("com.android.application") version "8.5.2" apply false
    id("org.jetbrains.kotlin.android") version "1.9.24" apply false
}
